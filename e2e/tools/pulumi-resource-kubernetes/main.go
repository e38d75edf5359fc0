// Command pulumi-resource-kubernetes serves the pulumi-kubernetes provider for the e2e suite.
//
// Upstream's main embeds two files that its module zip does not contain (they are made by its
// `go generate` step). e2e/build-tools copies this folder to the cache and writes them there,
// from the schema.json and terraform-mapping.json of the downloaded provider module, before
// building; they are never written to the work tree.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
