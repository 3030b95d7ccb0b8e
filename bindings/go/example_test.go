package billiard_test

import (
	"context"
	"fmt"
	"os"

	billiard "github.com/billiard/billiard/bindings/go"
)

// The README's flow: this test binary is its own worker program (TestMain
// serves tasks when GOBILLIARD_TEST_WORKER is set).
func Example() {
	self, _ := os.Executable()
	pool, err := billiard.New([]string{self}, &billiard.Options{Workers: 2,
		Env: map[string]string{"GOBILLIARD_TEST_WORKER": "1"}})
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	id, _ := pool.Submit([]byte("echo:hello"))
	r, err := pool.WaitTask(context.Background(), id)
	fmt.Println(r.Outcome, string(r.Data), err)
	// Output: OK hello <nil>
}
