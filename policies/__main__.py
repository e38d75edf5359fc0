"""The cluster-secrets policy pack: `pulumi preview --policy-pack policies`."""

from cluster_secrets_policies import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="cluster-secrets", policies=POLICIES)
