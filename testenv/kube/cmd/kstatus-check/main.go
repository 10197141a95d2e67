// Command kstatus-check reads one object (JSON or YAML) on stdin and prints what kstatus computes for it, as
// {"status":"...","message":"..."}. It is the same library Flux's health checks and `kpt live status` use, so
// the tests judge the operator's status by what those tools will decide, not by our reading of the convention.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus-check:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	// YAMLToJSON passes JSON through, so one path serves `kubectl get -o json` and hand-written YAML alike; going
	// through JSON also gives the int64 numbers unstructured expects for generation and observedGeneration.
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(doc); err != nil {
		return err
	}
	result, err := status.Compute(obj)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(map[string]string{"status": result.Status.String(), "message": result.Message})
}
