"""Components and pure helpers of the cluster-secrets Pulumi program."""
