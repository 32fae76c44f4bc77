package edge_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/schemas"
)

// Example wires a receiver to an in-process Kafka cluster, answers Meta's
// subscription handshake, and accepts one signed status webhook.
func Example() {
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, edge.DefaultEventsTopic, edge.DefaultDLQTopic))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()

	// The client is the caller's: the receiver only produces through it.
	client, err := kgo.NewClient(append(edge.ProducerOpts(), kgo.SeedBrokers(cluster.ListenAddrs()...))...)
	if err != nil {
		panic(err)
	}
	defer client.Close()

	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		panic(err)
	}
	secret := []byte("app-secret")
	recv, err := edge.New(edge.Config{
		Region:      "eu-west-1",
		AppSecret:   secret,
		VerifyToken: "verify-me",
	}, client, codec)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	recv.Register(mux)

	// Meta's subscription handshake.
	get := httptest.NewRequest(http.MethodGet,
		"/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444", nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, get)
	fmt.Println(rec.Code, rec.Body.String())

	// A status notification, signed as Meta signs it.
	body := `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages",` +
		`"value":{"metadata":{"phone_number_id":"106540352242922"},"statuses":[` +
		`{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=","status":"read","timestamp":"1750030073","recipient_id":"16505551234"}]}}]}]}`
	post := httptest.NewRequest(http.MethodPost, edge.WebhookPath, strings.NewReader(body))
	post.Header.Set(edge.SignatureHeader, edge.Sign([]byte(body), secret))
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, post) // returns once Kafka has acknowledged the record
	fmt.Print(rec.Code, " ", rec.Body.String())

	st := recv.Stats()
	fmt.Println("accepted:", st.Accepted, "events:", st.Events)
	// Output:
	// 200 1158201444
	// 200 {"accepted":1,"rejected":0}
	// accepted: 1 events: 1
}

// ExampleSign signs a body as Meta does, for a test or the CLI's post
// command.
func ExampleSign() {
	fmt.Println(edge.Sign([]byte(`{"object":"whatsapp_business_account"}`), []byte("app-secret")))
	// Output: sha256=0bf7374433906636bed1653bc7c64affb42fa5da9a39e251ab95c2e3a9c06923
}
