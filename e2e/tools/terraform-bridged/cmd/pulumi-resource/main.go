// Command pulumi-resource serves one of the bridged providers (see ../../bridged.go), built once per
// plugin as pulumi-resource-onepassword and pulumi-resource-time.
//
// e2e/build-tools sets the provider and the version the engine looks the plugin up by
// (-X main.name, -X main.version) and, in its copy of this folder under the suite's cache, writes
// the schema and bridge metadata that pulumi-tfgen makes for that provider beside this file; they
// are never written to the work tree.
package main

import (
	"context"
	_ "embed"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	"cluster-secrets.e2e/tools/terraform-bridged"
)

var name, version string

//go:embed schema-embed.json
var schema []byte

//go:embed bridge-metadata.json
var metadata []byte

func main() {
	info := bridged.Providers[name](version, metadata)
	pftfbridge.Main(context.Background(), name, info, pftfbridge.ProviderMetadata{PackageSchema: schema})
}
