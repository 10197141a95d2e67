// Command lua-health runs an Argo CD health.lua in gopher-lua, the interpreter Argo CD embeds, set up the way Argo
// CD sets it up for a script from argocd-cm, so a script that passes here behaves the same inside Argo CD.
//
//	lua-health DIR              runs DIR/health.lua on every case of DIR/health_test.yaml (Argo CD's own layout),
//	                            prints one line per case and exits 1 if any result differs from its expectation
//	lua-health -eval SCRIPT     prints {"status":"...","message":"..."} for the object (JSON or YAML) on stdin
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testFile struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "-eval":
		err = evalStdin(os.Args[2])
	case len(os.Args) == 2:
		err = runTests(os.Args[1])
	default:
		err = errors.New("usage: lua-health DIR | lua-health -eval SCRIPT < object")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lua-health:", err)
		os.Exit(1)
	}
}

func evalStdin(scriptPath string) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	got, err := evalObject(string(script), raw)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(got)
}

func runTests(dir string) error {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return err
	}
	var tests testFile
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		return fmt.Errorf("health_test.yaml: %w", err)
	}
	if len(tests.Tests) == 0 {
		return errors.New("health_test.yaml lists no tests")
	}
	passed, failed := 0, 0
	for _, tc := range tests.Tests {
		input, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
		var got healthStatus
		if err == nil {
			got, err = evalObject(string(script), input)
		}
		switch {
		case err != nil:
			failed++
			fmt.Printf("FAIL %s: %v\n", tc.InputPath, err)
		case got != tc.HealthStatus:
			failed++
			fmt.Printf("FAIL %s: got %s %q, want %s %q\n", tc.InputPath, got.Status, got.Message,
				tc.HealthStatus.Status, tc.HealthStatus.Message)
		default:
			passed++
			fmt.Printf("ok   %s: %s %q\n", tc.InputPath, got.Status, got.Message)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d cases failed", failed, passed+failed)
	}
	return nil
}

func evalObject(script string, input []byte) (healthStatus, error) {
	// Argo CD's tests read the YAML with sigs.k8s.io/yaml into map[string]any too, so numbers arrive as float64.
	var obj map[string]any
	if err := yaml.Unmarshal(input, &obj); err != nil {
		return healthStatus{}, err
	}
	// SkipOpenLibs and then only package, base and table: what Argo CD gives a script from argocd-cm unless
	// useOpenLibs is set, so a call into string or math fails here as it would there. (Argo CD also adds a
	// reduced os library, which our script does not use.)
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // Argo CD's limit per script
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	var hs healthStatus
	for field, dst := range map[string]*string{"status": &hs.Status, "message": &hs.Message} {
		switch v := l.GetField(ret, field).(type) {
		case lua.LString:
			*dst = string(v)
		case *lua.LNilType:
		default:
			return healthStatus{}, fmt.Errorf("hs.%s is a %s, not a string", field, v.Type())
		}
	}
	// Argo CD shows a status it does not know as Unknown instead of failing; doing the same lets a test case see a
	// misspelt status as the Unknown an Argo CD user would see.
	switch hs.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

// toLua converts the way Argo CD's decodeValue does: objects and arrays become tables, a JSON null becomes nil,
// so `obj.status == nil` means the same here as in Argo CD.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
