"""The URL forms of store/topology.py, without Redis."""

from __future__ import annotations

import pytest

from dothis.errors import InvalidArguments, InvalidUrl
from dothis.store.connection import redact
from dothis.store.topology import check_queues, hash_tag, parse, with_settings


def test_settings_travel_in_the_url_and_come_out_for_redis_py(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DOTHIS_TLS_CA", raising=False)
    monkeypatch.delenv("DOTHIS_CLUSTER", raising=False)
    url = with_settings("rediss://:pw@h:6380/2?ssl_check_hostname=true", tls_ca="/ca.pem",
                        cluster=True)  # fmt: skip
    target = parse(url)
    assert target.url == "rediss://:pw@h:6380/2?ssl_check_hostname=true"
    assert target.tls == {"ssl_ca_certs": "/ca.pem"} and target.cluster
    assert redact(url).startswith("rediss://:***@h:6380/2?")
    assert with_settings("redis://h/0") == "redis://h/0"


def test_environment_stands_for_missing_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOTHIS_TLS_CA", "/env-ca.pem")
    monkeypatch.setenv("DOTHIS_CLUSTER", "1")
    assert parse("rediss://h:1/0").tls == {"ssl_ca_certs": "/env-ca.pem"}
    assert parse("redis://h:1/0").tls == {}  # a plain URL ignores a CA from the environment
    assert parse("redis://h:1/0").cluster
    assert not parse("redis://h:1/0?cluster=0").cluster


def test_a_tls_file_on_a_plain_url_is_refused() -> None:
    with pytest.raises(InvalidUrl, match="rediss://"):
        parse("redis://h:1/0?tls_ca=/ca.pem")


def test_sentinel_url() -> None:
    target = parse("redis+sentinel://user:s%40cret@10.0.0.1:26379,[::1],h3:5000/mymaster/3")
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26379), ("h3", 5000))
    assert (target.service, target.db, target.username, target.password) == (
        "mymaster", 3, "user", "s@cret")  # fmt: skip
    assert not target.uses_tls and parse("rediss+sentinel://h:1/m").uses_tls
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h:x/m", "redis+sentinel://h:1/m/x"):
        with pytest.raises(InvalidUrl, match="redis\\+sentinel://"):
            parse(bad)
    with pytest.raises(InvalidUrl, match="Sentinel and Redis Cluster"):
        parse("redis+sentinel://h:1/m?cluster=1")


@pytest.mark.parametrize(("name", "tag"), [("{emails}", "emails"), ("app{emails}", "emails"),
                                           ("{}emails", None), ("emails", None), ("{a}{b}", "a"),
                                           ("a{b", None)])  # fmt: skip
def test_hash_tag(name: str, tag: str | None) -> None:
    assert hash_tag(name) == tag


def test_untagged_queue_on_a_cluster() -> None:
    check_queues("redis://h:1/0", ["emails"])  # not a cluster: any name
    check_queues("redis://h:1/0?cluster=1", ["{emails}", "x{y}"])
    with pytest.raises(InvalidArguments, match=r"emails, b carry no hash tag.*\{emails\}, \{b\}"):
        check_queues("redis://h:1/0?cluster=1", ["emails", "{a}", "b"])
