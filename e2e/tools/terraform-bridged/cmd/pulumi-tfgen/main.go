// Command pulumi-tfgen writes the package schema of one of the bridged providers:
//
//	pulumi-tfgen onepassword|time VERSION schema --out DIR
//
// e2e/build-tools runs it at build time; the schema is never committed.
package main

import (
	"fmt"
	"os"

	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"cluster-secrets.e2e/tools/terraform-bridged"
)

func main() {
	if len(os.Args) < 3 || bridged.Providers[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: pulumi-tfgen onepassword|time VERSION schema --out DIR")
		os.Exit(2)
	}
	name, version := os.Args[1], os.Args[2]
	// tfgen reads its own command line: hand it the rest.
	os.Args = append([]string{os.Args[0]}, os.Args[3:]...)
	pftfgen.Main(name, bridged.Providers[name](version, nil))
}
