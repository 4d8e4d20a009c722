// kind-config-check validates kind cluster configuration files the way `kind create cluster
// --config` reads them, without a container engine: strict decoding into kind's own
// v1alpha4 types (an unknown or misspelt field is an error, as in kind), then the checks kind
// makes on the fields we use. Usage: kind-config-check FILE...
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func check(path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
		errs = append(errs, fmt.Sprintf("kind/apiVersion must be Cluster/kind.x-k8s.io/v1alpha4, not %s/%s", cfg.Kind, cfg.APIVersion))
	}
	controlPlanes := 0
	hostPorts := map[string]bool{}
	for i, node := range cfg.Nodes {
		switch node.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			errs = append(errs, fmt.Sprintf("nodes[%d].role: %q is not control-plane or worker", i, node.Role))
		}
		for j, m := range node.ExtraPortMappings {
			where := fmt.Sprintf("nodes[%d].extraPortMappings[%d]", i, j)
			if m.ContainerPort < 1 || m.ContainerPort > 65535 || m.HostPort < 0 || m.HostPort > 65535 {
				errs = append(errs, where+": ports must be within 1-65535")
			}
			switch m.Protocol {
			case "", v1alpha4.PortMappingProtocolTCP, v1alpha4.PortMappingProtocolUDP, v1alpha4.PortMappingProtocolSCTP:
			default:
				errs = append(errs, fmt.Sprintf("%s.protocol: %q is not TCP, UDP or SCTP", where, m.Protocol))
			}
			key := fmt.Sprintf("%s:%d/%s", m.ListenAddress, m.HostPort, m.Protocol)
			if m.HostPort != 0 && hostPorts[key] {
				errs = append(errs, where+": host port "+key+" is mapped twice")
			}
			hostPorts[key] = true
		}
	}
	if len(cfg.Nodes) > 0 && controlPlanes == 0 {
		errs = append(errs, "nodes: at least one control-plane node is required")
	}
	return errs
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-config-check FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		errs := check(path)
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "%s: %s\n", path, e)
		}
		if len(errs) == 0 {
			fmt.Printf("%s: valid kind v1alpha4 configuration\n", path)
		} else {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
