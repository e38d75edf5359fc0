// terraform-provider-time keeps its provider in an internal package; a module under its path may
// import it. Ours hands it out, as pulumiverse-time's own shim does (that module is not served).
module github.com/hashicorp/terraform-provider-time/shim

go 1.22.7

require (
	github.com/hashicorp/terraform-plugin-framework v1.11.0
	github.com/hashicorp/terraform-provider-time v0.12.1
)

require (
	github.com/fatih/color v1.16.0 // indirect
	github.com/hashicorp/go-hclog v1.6.3 // indirect
	github.com/hashicorp/terraform-plugin-framework-timetypes v0.5.0 // indirect
	github.com/hashicorp/terraform-plugin-framework-validators v0.13.0 // indirect
	github.com/hashicorp/terraform-plugin-go v0.23.0 // indirect
	github.com/hashicorp/terraform-plugin-log v0.9.0 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/mitchellh/go-testing-interface v1.14.1 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/sys v0.23.0 // indirect
)
