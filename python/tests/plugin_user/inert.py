"""Run alone (by tests/integration/test_testing_kit.py): a session that uses none of the kit's
fixtures loads the plugin and nothing else of the kit, so it starts no redis-server."""

from __future__ import annotations

import sys

import pytest


def test_the_kit_stays_out_of_the_way(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.get_plugin("dothis") is not None
    loaded = [name for name in sys.modules if name.startswith("dothis.testing.")]
    assert loaded == ["dothis.testing.plugin"]
