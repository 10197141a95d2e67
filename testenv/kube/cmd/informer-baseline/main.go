// Command informer-baseline is the memory floor the benchmarks hold the operator against: client-go's shared
// informer caching every Service of the cluster, as a Go controller built on client-go or controller-runtime
// would. It prints a JSON line the moment the cache has synced (so a caller can time it from spawn, as it times
// the operator), lets it settle, prints a second line with its RSS and heap, and then either exits or, with
// -wait, stays up until SIGTERM so that the caller can read /proc/<pid>/status the same way it reads the
// operator's.
//
//	informer-baseline -kubeconfig FILE [-settle 3s] [-wait] [-protobuf]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// started is taken as early as Go lets us, so sync time is comparable with a Node process timed from spawn.
var started = time.Now()

type report struct {
	Services    int     `json:"services"`
	SyncedMs    float64 `json:"syncedMs"`
	RSSBytes    int64   `json:"rssBytes"`
	HeapAlloc   uint64  `json:"heapAllocBytes"`
	HeapInuse   uint64  `json:"heapInuseBytes"`
	HeapSys     uint64  `json:"heapSysBytes"`
	Sys         uint64  `json:"sysBytes"`
	LiveHeap    uint64  `json:"liveHeapBytes"`
	NumGC       uint32  `json:"numGC"`
	ContentType string  `json:"contentType"`
	GoVersion   string  `json:"goVersion"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "informer-baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	settle := flag.Duration("settle", 3*time.Second, "wait after sync before measuring")
	wait := flag.Bool("wait", false, "stay up after printing, until SIGTERM or SIGINT")
	protobuf := flag.Bool("protobuf", false, "LIST and WATCH in protobuf, as kube-controller-manager does")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	// The default rate limit (5 qps) would throttle nothing here, but a fair floor must not be slowed by it.
	cfg.QPS, cfg.Burst = 1000, 1000
	if *protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	factory := informers.NewSharedInformerFactory(client, 0)
	informer := factory.Core().V1().Services().Informer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("cache did not sync")
	}
	synced := time.Since(started)
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"synced": true, "syncedMs": float64(synced.Microseconds()) / 1000}); err != nil {
		return err
	}
	select {
	case <-time.After(*settle):
	case <-ctx.Done():
		return nil
	}

	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	r := report{
		Services:    len(informer.GetStore().ListKeys()),
		SyncedMs:    float64(synced.Microseconds()) / 1000,
		RSSBytes:    rss(),
		HeapAlloc:   mem.HeapAlloc,
		HeapInuse:   mem.HeapInuse,
		HeapSys:     mem.HeapSys,
		Sys:         mem.Sys,
		NumGC:       mem.NumGC,
		ContentType: cfg.ContentType,
		GoVersion:   runtime.Version(),
	}
	if r.ContentType == "" {
		r.ContentType = "application/json"
	}
	// Live heap is read after a forced GC and last, so that the RSS above is what the process holds unprompted.
	runtime.GC()
	runtime.ReadMemStats(&mem)
	r.LiveHeap = mem.HeapAlloc
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return err
	}
	if *wait {
		<-ctx.Done()
	}
	// Shutdown waits for the informer goroutines, which end only once their stop channel is closed.
	stop()
	factory.Shutdown()
	return nil
}

func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
