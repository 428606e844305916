// Command ecsrole-health tells how GitOps tools judge one Kubernetes object, by running their own
// code on it: kstatus (sigs.k8s.io/cli-utils, what `kubectl wait`-style tooling and Flux build on),
// Flux's kstatus fork (what `wait: true` uses when no healthCheckExprs match), Flux's CEL
// health-check evaluator (github.com/fluxcd/pkg/runtime/cel, what kustomize-controller runs for
// `healthCheckExprs`) and an Argo CD Lua health script in gopher-lua, with the libraries and the
// `obj` global set up the way Argo CD sets them up for a script from argocd-cm.
//
// Usage:
//
//	ecsrole-health [--flux-exprs FILE.json] [--argo-lua FILE.lua] [OBJECT.json]
//
// The object is read from OBJECT.json, or from stdin when it is absent or "-". The result is one
// JSON object on stdout; a tool that errors reports its error there instead of failing the run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Verdict is one tool's judgement; Error is set instead of Status when the tool failed.
type Verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Report is what the command prints.
type Report struct {
	Kstatus  Verdict  `json:"kstatus"`
	FluxWait Verdict  `json:"fluxWait"`
	FluxCEL  *Verdict `json:"fluxCEL,omitempty"`
	// Argo is Argo CD's assessment: "Pending deletion" for an object being deleted (checked
	// before any health script), else the script's verdict; ArgoLua is the script's verdict alone.
	Argo    *Verdict `json:"argo,omitempty"`
	ArgoLua *Verdict `json:"argoLua,omitempty"`
}

func main() {
	fluxExprs := flag.String("flux-exprs", "", "JSON file with Flux healthCheckExprs fields: current, inProgress, failed")
	argoLua := flag.String("argo-lua", "", "Lua file with an Argo CD health check")
	flag.Parse()
	if err := run(*fluxExprs, *argoLua, flag.Arg(0), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ecsrole-health:", err)
		os.Exit(2)
	}
}

func run(fluxExprsPath, argoLuaPath, objectPath string, stdin io.Reader, stdout io.Writer) error {
	object, err := readObject(objectPath, stdin)
	if err != nil {
		return err
	}
	report := Report{Kstatus: kstatusVerdict(object), FluxWait: fluxWaitVerdict(object)}
	if fluxExprsPath != "" {
		raw, err := os.ReadFile(fluxExprsPath)
		if err != nil {
			return err
		}
		var exprs kustomize.HealthCheckExpressions
		if err := json.Unmarshal(raw, &exprs); err != nil {
			return fmt.Errorf("%s: %w", fluxExprsPath, err)
		}
		verdict, err := fluxCELVerdict(&exprs, object)
		if err != nil {
			return err
		}
		report.FluxCEL = &verdict
	}
	if argoLuaPath != "" {
		script, err := os.ReadFile(argoLuaPath)
		if err != nil {
			return err
		}
		scripted := argoVerdict(string(script), object)
		report.ArgoLua = &scripted
		assessed := argoAssessment(scripted, object)
		report.Argo = &assessed
	}
	encoder := json.NewEncoder(stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(report)
}

// readObject decodes the object the way client-go does (unstructured's JSON decoder: integers
// become int64), so the tools see the same values they see in a controller.
func readObject(path string, stdin io.Reader) (*unstructured.Unstructured, error) {
	var raw []byte
	var err error
	if path == "" || path == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("the object is not a Kubernetes object in JSON: %w", err)
	}
	return object, nil
}

func kstatusVerdict(object *unstructured.Unstructured) Verdict {
	result, err := status.Compute(object)
	if err != nil {
		return Verdict{Error: err.Error()}
	}
	return Verdict{Status: result.Status.String(), Message: result.Message}
}

// fluxWaitVerdict is Flux's fork of kstatus, which kustomize-controller's `wait: true` runs for
// kinds without a matching healthCheckExprs entry.
func fluxWaitVerdict(object *unstructured.Unstructured) Verdict {
	result, err := fluxstatus.Compute(object)
	if err != nil {
		return Verdict{Error: err.Error()}
	}
	return Verdict{Status: result.Status.String(), Message: result.Message}
}

// fluxCELVerdict runs the evaluator kustomize-controller builds for a healthCheckExprs entry. An
// evaluation error is what Flux's generic status reader turns into the Unknown status.
func fluxCELVerdict(exprs *kustomize.HealthCheckExpressions, object *unstructured.Unstructured) (Verdict, error) {
	evaluator, err := fluxcel.NewStatusEvaluator(exprs)
	if err != nil {
		return Verdict{}, fmt.Errorf("the Flux health check expressions do not compile: %w", err)
	}
	result, err := evaluator.Evaluate(context.Background(), object)
	if err != nil {
		return Verdict{Status: fluxstatus.UnknownStatus.String(), Error: err.Error()}, nil
	}
	return Verdict{Status: result.Status.String(), Message: result.Message}, nil
}

// The health statuses Argo CD accepts from a Lua script; anything else it reports as Unknown.
var argoHealthStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// argoVerdict runs a health script as Argo CD runs one from argocd-cm (useOpenLibs false): the
// standard libraries are not opened, only package, base, table and a restricted os; `obj` is the
// object converted value by value into Lua tables; the script has one second; the returned table
// must carry a known status, else the health is Unknown.
func argoVerdict(script string, object *unstructured.Unstructured) Verdict {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, library := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openRestrictedOs},
	} {
		err := state.CallByParam(lua.P{Fn: state.NewFunction(library.open), NRet: 0, Protect: true}, lua.LString(library.name))
		if err != nil {
			return Verdict{Error: fmt.Sprintf("opening Lua library %s: %v", library.name, err)}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, object.Object))
	if err := state.DoString(script); err != nil {
		return Verdict{Error: err.Error()}
	}
	returned, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return Verdict{Error: fmt.Sprintf("expect table output from Lua script, not %s", state.Get(-1).Type())}
	}
	verdict, err := healthFromTable(returned)
	if err != nil {
		return Verdict{Error: err.Error()}
	}
	if !argoHealthStatuses[verdict.Status] {
		return Verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return verdict
}

// argoAssessment is what Argo CD shows for the object: a resource with a deletion timestamp is
// Progressing "Pending deletion" whatever its health script says, and a script that fails makes
// the health Unknown with the error as the message.
func argoAssessment(scripted Verdict, object *unstructured.Unstructured) Verdict {
	if object.GetDeletionTimestamp() != nil {
		return Verdict{Status: "Progressing", Message: "Pending deletion"}
	}
	if scripted.Error != "" {
		return Verdict{Status: "Unknown", Message: scripted.Error}
	}
	return scripted
}

// healthFromTable reads {status = ..., message = ...}, refusing non-string values as a JSON
// decode into Argo CD's HealthStatus would.
func healthFromTable(table *lua.LTable) (Verdict, error) {
	var verdict Verdict
	for field, target := range map[string]*string{"status": &verdict.Status, "message": &verdict.Message} {
		switch value := table.RawGetString(field).(type) {
		case lua.LString:
			*target = string(value)
		case *lua.LNilType:
		default:
			return Verdict{}, errors.New("health field " + field + " is a " + value.Type().String() + ", not a string")
		}
	}
	return verdict, nil
}

// openRestrictedOs gives scripts the clock functions of os and nothing that touches the host.
func openRestrictedOs(state *lua.LState) int {
	module := state.RegisterModule(lua.OsLibName, map[string]lua.LGFunction{
		"time": func(state *lua.LState) int {
			state.Push(lua.LNumber(time.Now().Unix()))
			return 1
		},
		"clock": func(state *lua.LState) int {
			state.Push(lua.LNumber(float64(time.Now().UnixNano()) / 1e9))
			return 1
		},
	})
	state.Push(module)
	return 1
}

// toLua converts a decoded JSON value into Lua values: maps and lists become tables, numbers
// (int64 from the unstructured decoder) LNumber, null nil.
func toLua(state *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case int64:
		return lua.LNumber(converted)
	case int:
		return lua.LNumber(converted)
	case float64:
		return lua.LNumber(converted)
	case []any:
		table := state.CreateTable(len(converted), 0)
		for _, item := range converted {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]any:
		table := state.CreateTable(0, len(converted))
		for key, item := range converted {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	}
	return lua.LNil
}
