import pytest

from components.handoff import Handoff, PreviousHandoff, decide_handoff

CHART_SECRET = Handoff(create_secret=True, external_secret_first=False)
ESO_SECRET = Handoff(create_secret=False, external_secret_first=True)


@pytest.mark.parametrize(
    ("mode", "previous", "expected"),
    [
        # A new stack: the chart creates the Secret so Argo CD starts at once; ESO adopts it.
        ("auto", PreviousHandoff(), CHART_SECRET),
        # The previous deployment did not see the ExternalSecret synced: keep the chart's Secret.
        ("auto", PreviousHandoff(create_secret=True, synced=False), CHART_SECRET),
        ("auto", PreviousHandoff(create_secret=True, synced=None), CHART_SECRET),
        # Synced once: hand over, with Argo CD after the ExternalSecret.
        ("auto", PreviousHandoff(create_secret=True, synced=True), ESO_SECRET),
        ("auto", PreviousHandoff(create_secret=False, synced=True), ESO_SECRET),
        # Handed over already: never back to the chart, whatever `synced` says.
        ("auto", PreviousHandoff(create_secret=False, synced=False), ESO_SECRET),
        ("auto", PreviousHandoff(create_secret=False, synced=None), ESO_SECRET),
        # Fixed modes ignore history.
        ("true", PreviousHandoff(create_secret=False, synced=True), CHART_SECRET),
        ("false", PreviousHandoff(), ESO_SECRET),
    ],
)
def test_decide_handoff(mode, previous, expected):
    assert decide_handoff(mode, previous) == expected
