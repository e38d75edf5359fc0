// Package bridged maps two Terraform providers to the Pulumi packages the program's Python SDKs
// call: pulumi-onepassword 1.2.1 (terraform-provider-onepassword v2.2.1) and pulumiverse-time 0.1.1
// (terraform-provider-time v0.12.1), through pulumi-terraform-bridge's Plugin Framework support.
//
// Written for the e2e suite from the Terraform providers' schemas and the installed Python SDKs
// (tokens, property names, config keys and their environment defaults); e2e/test_0_plugins.py
// holds the result to those SDKs. tfgen (cmd/pulumi-tfgen) turns this into the package schema at
// build time; the plugins (cmd/pulumi-resource-*) embed it and serve the same info.
package bridged

import (
	"github.com/1Password/terraform-provider-onepassword/v2/providerlink"
	timeshim "github.com/hashicorp/terraform-provider-time/shim"
	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
)

// Providers by Pulumi package name. `version` is the plugin's (the Python SDK's); `metadata` is the
// bridge-metadata.json tfgen wrote (nil while tfgen runs).
var Providers = map[string]func(version string, metadata []byte) tfbridge.ProviderInfo{
	"onepassword": OnePassword,
	"time":        Time,
}

// fromEnv: a config key that falls back to environment variables, as the SDK's config does.
func fromEnv(names ...string) *tfbridge.SchemaInfo {
	return &tfbridge.SchemaInfo{Default: &tfbridge.DefaultInfo{EnvVars: names}}
}

// singleModule names every resource and data source `<pkg>:index/<name>:<Name>` (and
// `get<Name>` for data sources), the tokens both SDKs use.
func singleModule(info *tfbridge.ProviderInfo, tfPrefix string) {
	info.MustComputeTokens(tokens.SingleModule(tfPrefix, "index", tokens.MakeStandard(info.Name)))
}

// OnePassword: onepassword_item -> onepassword:index/item:Item, the data sources onepassword_item
// and onepassword_vault -> getItem and getVault; provider config url, token, serviceAccountToken,
// account and opCliPath with the SDK's environment defaults.
func OnePassword(version string, metadata []byte) tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:                       pftfbridge.ShimProvider(providerlink.New(version)()),
		Name:                    "onepassword",
		Version:                 version,
		GitHubOrg:               "1Password",
		TFProviderModuleVersion: "v2",
		TFProviderVersion:       "2.2.1",
		TFProviderLicense:       tfbridge.SetProviderLicense(tfbridge.MITLicenseType),
		MetadataInfo:            tfbridge.NewProviderMetadata(metadata),
		Config: map[string]*tfbridge.SchemaInfo{
			"url":                   fromEnv("OP_CONNECT_HOST"),
			"token":                 fromEnv("OP_CONNECT_TOKEN"),
			"service_account_token": fromEnv("OP_SERVICE_ACCOUNT_TOKEN"),
			"account":               fromEnv("OP_ACCOUNT"),
			"op_cli_path":           fromEnv("OP_CLI_PATH"),
		},
	}
	singleModule(&info, "onepassword_")
	return info
}

// Time: time_offset, time_rotating, time_sleep and time_static -> time:index/<name>:<Name>; no config.
func Time(version string, metadata []byte) tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:                 pftfbridge.ShimProvider(timeshim.NewProvider()),
		Name:              "time",
		Version:           version,
		GitHubOrg:         "hashicorp",
		TFProviderVersion: "0.12.1",
		MetadataInfo:      tfbridge.NewProviderMetadata(metadata),
	}
	singleModule(&info, "time_")
	return info
}
