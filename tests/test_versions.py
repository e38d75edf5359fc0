import base64
import json

import pytest

from components.versions import connect_credentials_value, eso_api_version, parse_chart_version


@pytest.mark.parametrize("text", ["1.17.0", "0.12.1", "2.9.0", "2.3.0-rc.1", "10.1.1+build.5"])
def test_parse_accepts_semver(text):
    assert parse_chart_version(text).major == int(text.split(".")[0])


@pytest.mark.parametrize("text", ["", "latest", "1.17", "v1.17.0", "^1.17.0", "1.17.x", "01.2.3", "1.2.3 "])
def test_parse_rejects_what_is_not_a_version(text):
    with pytest.raises(ValueError, match="not a chart version"):
        parse_chart_version(text)


@pytest.mark.parametrize(
    ("version", "api"),
    [
        ("0.12.1", "external-secrets.io/v1beta1"),
        ("0.15.1", "external-secrets.io/v1beta1"),
        ("0.16.0-rc.1", "external-secrets.io/v1beta1"),
        ("0.16.0", "external-secrets.io/v1"),
        ("0.17.0", "external-secrets.io/v1"),
        ("2.9.0", "external-secrets.io/v1"),
    ],
)
def test_eso_api_version_follows_the_chart(version, api):
    assert eso_api_version(parse_chart_version(version)) == api


CREDENTIALS = json.dumps({"verifier": {}, "version": "2"}).encode()


@pytest.mark.parametrize("version", ["1.17.0", "2.2.9", "2.3.0-rc.1"])
def test_connect_credentials_are_base64_below_2_3_0(version):
    value = connect_credentials_value(parse_chart_version(version), CREDENTIALS)
    assert base64.b64decode(value) == CREDENTIALS


@pytest.mark.parametrize("version", ["2.3.0", "2.4.1", "3.0.0"])
def test_connect_credentials_are_raw_json_from_2_3_0(version):
    assert connect_credentials_value(parse_chart_version(version), CREDENTIALS) == CREDENTIALS.decode()
