// Command coredns is upstream CoreDNS with only the plugins the data-plane harness uses, registered in the
// order of CoreDNS's own plugin.cfg: importing core/plugin (every plugin) takes minutes more to build and pulls
// in cloud SDKs the tests never touch.
package main

import (
	_ "time/tzdata"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order of plugin.cfg matters: a request passes through the plugins in this order, whatever the Corefile's.
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
