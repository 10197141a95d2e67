// Command etcd is the upstream etcd server. It lives in its own module because etcd 3.6 pins gRPC and
// OpenTelemetry versions that differ from the ones k8s.io/kubernetes selects.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
