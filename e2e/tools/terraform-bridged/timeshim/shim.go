// Package shim returns terraform-provider-time's provider (see go.mod).
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"

	timeprovider "github.com/hashicorp/terraform-provider-time/internal/provider"
)

func NewProvider() provider.Provider {
	return timeprovider.New()
}
