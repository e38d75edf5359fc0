"""Tools around the cluster-secrets Pulumi program: bootstrap (up/preview/destroy) and the offline plan."""
