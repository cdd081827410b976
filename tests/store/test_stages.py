"""Tests for stages.py: default graph, configuration validation, resolution, policy checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_storage.errors import ConfigError, NotFoundError, PolicyError
from package_storage.store.stages import (
    Stage,
    StageGraph,
    StagePolicy,
    stage_from_config,
)


@pytest.fixture
def graph() -> StageGraph:
    return StageGraph.default()


# --- defaults ----------------------------------------------------------------------------------


def test_default_stages_and_policies(graph: StageGraph) -> None:
    assert graph.names == ("production", "staging", "snapshot")
    assert graph.stage("snapshot").policy == StagePolicy("always", "always", frozen=False)
    assert graph.stage("staging").policy == StagePolicy("force", "force", frozen=False)
    assert graph.stage("production").policy == StagePolicy("never", "never", frozen=False)
    assert graph.promotion_path("snapshot") == ("snapshot", "staging", "production")
    assert graph.publish_stages() == ("snapshot",)


def test_resolution_order_most_stable_first(graph: StageGraph) -> None:
    assert graph.resolution_order("snapshot") == ("production", "staging", "snapshot")
    assert graph.resolution_order("staging") == ("production", "staging")
    assert graph.resolution_order("production") == ("production",)


def test_affected_distributions_cascade(graph: StageGraph) -> None:
    assert graph.affected_distributions("production") == ("production", "staging", "snapshot")
    assert graph.affected_distributions("staging") == ("staging", "snapshot")
    assert graph.affected_distributions("snapshot") == ("snapshot",)


def test_unknown_stage_is_not_found(graph: StageGraph) -> None:
    with pytest.raises(NotFoundError, match="stage nope does not exist"):
        graph.resolution_order("nope")
    with pytest.raises(NotFoundError):
        graph.affected_distributions("nope")
    assert "nope" not in graph
    assert "staging" in graph


# --- policy checks -----------------------------------------------------------------------------


def test_publish_only_into_entry_stage(graph: StageGraph) -> None:
    graph.check_publish("snapshot")
    with pytest.raises(PolicyError, match=r"^stage production is filled by promotion from staging"):
        graph.check_publish("production")
    with pytest.raises(PolicyError, match="stage staging is filled by promotion from snapshot"):
        graph.check_publish("staging")


def test_overwrite_rules(graph: StageGraph) -> None:
    graph.check_overwrite("snapshot", "apache", "1.2.3")
    with pytest.raises(PolicyError, match="only when forced"):
        graph.check_overwrite("staging", "apache", "1.2.3")
    graph.check_overwrite("staging", "apache", "1.2.3", force=True)
    with pytest.raises(PolicyError) as info:
        graph.check_overwrite("production", "apache", "1.2.3", force=True, reason="please")
    assert str(info.value) == (
        "stage production never overwrites a version: apache 1.2.3 exists with other bytes"
    )
    assert "\n" not in str(info.value)


def test_remove_rules(graph: StageGraph) -> None:
    graph.check_remove("snapshot", "apache", "1.2.3")
    with pytest.raises(PolicyError, match="only when forced"):
        graph.check_remove("staging", "apache", "1.2.3", reason="broken")
    with pytest.raises(PolicyError, match="only with a reason"):
        graph.check_remove("staging", "apache", "1.2.3", force=True)
    with pytest.raises(PolicyError, match="only with a reason"):
        graph.check_remove("staging", "apache", "1.2.3", force=True, reason="   ")
    graph.check_remove("staging", "apache", "1.2.3", force=True, reason="broken")
    with pytest.raises(PolicyError, match="stage production never removes a version"):
        graph.check_remove("production", "apache", "1.2.3", force=True, reason="broken")


def test_promote_rules(graph: StageGraph) -> None:
    assert graph.check_promote("snapshot") == "staging"
    assert graph.check_promote("snapshot", "staging") == "staging"
    assert graph.check_promote("staging", "production") == "production"
    with pytest.raises(PolicyError, match="promotes only to staging, not to production"):
        graph.check_promote("snapshot", "production")
    with pytest.raises(PolicyError, match="stage production promotes to no stage"):
        graph.check_promote("production")
    with pytest.raises(PolicyError, match="promotes only to production, not to snapshot"):
        graph.check_promote("staging", "snapshot")
    with pytest.raises(NotFoundError):
        graph.check_promote("snapshot", "nowhere")
    assert graph.promotion_target("staging") == "production"
    with pytest.raises(PolicyError):
        graph.promotion_target("production")


def test_frozen_stage_refuses_every_change(graph: StageGraph) -> None:
    g = graph.with_frozen_stage("production-7.9")
    stage = g.stage("production-7.9")
    assert stage.policy.frozen
    assert stage.rank > g.stage("production").rank
    assert g.resolution_order("production-7.9") == ("production-7.9",)
    assert g.affected_distributions("production-7.9") == ("production-7.9",)
    assert "production-7.9" not in g.publish_stages()
    with pytest.raises(PolicyError, match=r"^stage production-7\.9 is frozen"):
        g.check_publish("production-7.9")
    with pytest.raises(PolicyError, match="is frozen"):
        g.check_overwrite("production-7.9", "a", "1.0.0", force=True)
    with pytest.raises(PolicyError, match="is frozen"):
        g.check_remove("production-7.9", "a", "1.0.0", force=True, reason="x")
    with pytest.raises(PolicyError, match="is frozen"):
        g.check_promote("production-7.9")


def test_frozen_stage_seen_by_another() -> None:
    g = StageGraph.default().with_frozen_stage("experimental", rank=-5)
    # A frozen stage may be seen by a distribution; it is less stable than snapshot here.
    g2 = g.with_stage(
        Stage(
            "snapshot",
            StagePolicy(),
            sees=("staging", "production"),
            promotes_to="staging",
            rank=0,
        )
    )
    assert g2 == g
    g3 = StageGraph(
        [
            Stage("legacy", StagePolicy("never", "never", True), (), None, 10),
            Stage("live", StagePolicy(), ("legacy",), None, 0),
        ]
    )
    assert g3.resolution_order("live") == ("legacy", "live")
    assert g3.affected_distributions("legacy") == ("legacy", "live")


def test_promotion_into_frozen_stage_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="promotes to old, which is frozen"):
        StageGraph(
            [
                Stage("new", StagePolicy(), (), "old", 0),
                Stage("old", StagePolicy(frozen=True), (), None, 1),
            ]
        )


# --- configuration validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([], "at least one stage"),
        ([Stage("a"), Stage("a", rank=1)], "stage a is declared twice"),
        ([Stage("a", sees=("b",))], "stage a sees unknown stage b"),
        ([Stage("a", sees=("a",))], "lists itself in sees"),
        (
            [Stage("a", sees=("b", "b")), Stage("b", rank=1)],
            "lists b twice in sees",
        ),
        ([Stage("a", promotes_to="zz")], "promotes to unknown stage zz"),
        ([Stage("a", promotes_to="a")], "stage a promotes to itself"),
        (
            [Stage("a", sees=("b",), rank=0), Stage("b", sees=("a",), rank=1)],
            "stage sees has a cycle: a -> b -> a",
        ),
        (
            [
                Stage("a", promotes_to="b", rank=0),
                Stage("b", promotes_to="c", rank=1),
                Stage("c", promotes_to="a", rank=2),
            ],
            "stage promotes_to has a cycle: a -> b -> c -> a",
        ),
        (
            [Stage("a", sees=("b",), rank=1), Stage("b", rank=0)],
            "a stage may only see more stable stages",
        ),
        (
            [Stage("a", promotes_to="b", rank=1), Stage("b", rank=0)],
            "promotion must go to a more stable stage",
        ),
        (
            [Stage("a", sees=("b", "c"), rank=0), Stage("b", rank=1), Stage("c", rank=1)],
            "distribution a sees stages b and c with the same rank 1",
        ),
        ([Stage("bad name")], "stage name 'bad name' is not valid"),
        ([Stage("")], "is not valid"),
        ([Stage("../etc")], "is not valid"),
    ],
)
def test_invalid_configurations(stages: list[Stage], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StageGraph(stages)


def test_policy_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="overwrite='sometimes' is not one of"):
        StagePolicy(overwrite="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="frozen='yes' must be true or false"):
        StagePolicy(frozen="yes")  # type: ignore[arg-type]


def test_config_round_trip(graph: StageGraph) -> None:
    config = graph.with_frozen_stage("production-7.9").as_config()
    assert StageGraph.from_config(config) == graph.with_frozen_stage("production-7.9")
    assert config[-1] == {
        "name": "snapshot",
        "rank": 0,
        "overwrite": "always",
        "remove": "always",
        "frozen": False,
        "sees": ["staging", "production"],
        "promotes_to": "staging",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rank": 1}, "needs a string 'name'"),
        ({"name": "a", "colour": "red"}, "stage a: unknown configuration key"),
        ({"name": "a", "rank": "1"}, "rank must be an integer"),
        ({"name": "a", "rank": True}, "rank must be an integer"),
        ({"name": "a", "sees": "b"}, "sees must be a list"),
        ({"name": "a", "sees": [1]}, "sees must be a list"),
        ({"name": "a", "promotes_to": 3}, "promotes_to must be a stage name"),
        ({"name": "a", "remove": "maybe"}, "remove='maybe'"),
    ],
)
def test_stage_from_config_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        stage_from_config(data)


# --- properties --------------------------------------------------------------------------------

_NAMES = [f"s{i}" for i in range(6)]


@st.composite
def graphs(draw: st.DrawFn) -> StageGraph:
    """Random valid graphs: distinct ranks, edges only towards higher ranks."""
    n = draw(st.integers(min_value=1, max_value=6))
    ranks = draw(st.permutations(range(n)))
    stages = []
    for i in range(n):
        higher = [j for j in range(n) if ranks[j] > ranks[i]]
        sees = draw(st.lists(st.sampled_from(higher), unique=True)) if higher else []
        target = draw(st.sampled_from([None, *higher])) if higher else None
        stages.append(
            Stage(
                _NAMES[i],
                StagePolicy(
                    draw(st.sampled_from(["always", "force", "never"])),
                    draw(st.sampled_from(["always", "force", "never"])),
                ),
                tuple(_NAMES[j] for j in sees),
                None if target is None else _NAMES[target],
                ranks[i],
            )
        )
    return StageGraph(stages)


@given(graphs())
def test_resolution_and_cascade_agree(g: StageGraph) -> None:
    for dist in g.distributions():
        order = g.resolution_order(dist)
        assert order[-1] == dist or g.stage(order[-1]).rank > g.stage(dist).rank
        assert dist in order
        ranks = [g.stage(n).rank for n in order]
        assert ranks == sorted(ranks, reverse=True)
        assert set(order) == {dist, *g.stage(dist).sees}
        # The cascade of a stage is exactly the distributions whose resolution includes it.
        for stage in order:
            assert dist in g.affected_distributions(stage)
    for stage in g.names:
        for dist in g.affected_distributions(stage):
            assert stage in g.resolution_order(dist)


@given(graphs())
def test_promotion_path_terminates_and_rises(g: StageGraph) -> None:
    for name in g.names:
        path = g.promotion_path(name)
        assert len(path) == len(set(path))
        ranks = [g.stage(n).rank for n in path]
        assert ranks == sorted(ranks)
    assert StageGraph.from_config(g.as_config()) == g


@pytest.mark.parametrize("name", ["search", "package", "epr", "categories", "health", "metrics"])
def test_stage_names_that_are_routes_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=f"stage name '{name}' is reserved: /{name} is a route"):
        StageGraph.default().with_frozen_stage(name)


# --- stage configuration files -----------------------------------------------------------------


def test_stage_file_config_derives_ranks_and_reads_rule_words() -> None:
    from package_storage.store.stages import stages_from_file_config

    data = {
        "stages": [
            {"name": "production", "overwrite": "never", "remove": False},
            {"name": "snapshot", "sees": ["staging", "production"], "promotes_to": "staging"},
            {
                "name": "staging",
                "sees": ["production"],
                "promotes_to": "production",
                "overwrite": "force",
                "remove": True,
            },
        ]
    }
    graph = stages_from_file_config(data, path="s.yml")
    assert graph.names == ("production", "staging", "snapshot")
    assert [graph.stage(n).rank for n in graph.names] == [2, 1, 0]
    assert graph.stage("staging").policy == StagePolicy("force", "always")
    assert graph.stage("production").policy == StagePolicy("never", "never")
    assert graph.publish_stages() == ("snapshot",)
    explicit = stages_from_file_config(
        {"stages": [{"name": "a", "rank": 5, "publish": False}]}, path="s.yml"
    )
    assert explicit.stage("a").rank == 5 and explicit.publish_stages() == ()


@given(st.one_of(st.text(max_size=10), st.booleans(), st.integers(), st.none()))
def test_parse_rule_maps_or_refuses(value: object) -> None:
    from package_storage.store.stages import RULE_WORDS, RULES, parse_rule

    accepted = (
        value is True or value is False or (isinstance(value, str) and value in ("yes", *RULES))
    )

    try:
        rule = parse_rule(value, "overwrite")
    except ConfigError as exc:
        assert "overwrite=" in str(exc)
        assert not accepted
    else:
        assert accepted and rule in RULES
        assert value is True or value is False or value in (rule, RULE_WORDS[rule])
