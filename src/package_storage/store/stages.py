"""Stage graph: stage policies, visibility, promotion path (pure, no I/O).

A *stage* is a named set of package versions with a :class:`StagePolicy`. A *distribution* is
what one registry endpoint serves: a stage plus the stages it sees. Every stage is also the name
of a distribution.

Rules encoded here (design §1):

* ``rank`` orders stages by stability: a higher rank is more stable. When the same name+version
  is visible from two stages, the copy of the higher-ranked stage wins (production over staging
  over snapshot). :meth:`StageGraph.resolution_order` lists a distribution's stages most stable
  first, so "first stage that has the version wins".
* ``sees`` names the *other* stages a stage's distribution shows, explicitly (visibility is not
  transitive: the defaults spell out ``snapshot`` sees ``staging`` and ``production``). A stage
  may only see more stable stages, which also rules out visibility cycles.
* ``promotes_to`` is the next stage on the promotion path; it must be more stable, not frozen,
  and the path may not loop. A stage that no other stage promotes to (and that is not frozen)
  is an entry point: packages are *published* there. Other stages are only filled by promotion.
* ``overwrite`` / ``remove`` are ``always`` (allowed), ``force`` (allowed with ``force``;
  removal also needs a reason) or ``never``. A ``frozen`` stage is served but never changed.

The ``check_*`` methods raise :class:`~package_storage.errors.PolicyError` with one line that
names the stage and the rule; the service calls them inside its transaction before changing
anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from package_storage.errors import ConfigError, NotFoundError, PolicyError

Rule = Literal["always", "force", "never"]
RULES: tuple[Rule, ...] = ("always", "force", "never")

DEFAULT_STAGES: tuple[str, ...] = ("snapshot", "staging", "production")


@dataclass(frozen=True, slots=True)
class StagePolicy:
    """What a stage allows. Defaults are the permissive ones of ``snapshot``."""

    overwrite: Rule = "always"
    remove: Rule = "always"
    frozen: bool = False

    def __post_init__(self) -> None:
        for attr in ("overwrite", "remove"):
            value = getattr(self, attr)
            if value not in RULES:
                raise ConfigError(f"stage policy {attr}={value!r} is not one of {', '.join(RULES)}")
        if not isinstance(self.frozen, bool):
            raise ConfigError(f"stage policy frozen={self.frozen!r} must be true or false")


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: its policy, the other stages its distribution sees, where it promotes to."""

    name: str
    policy: StagePolicy = field(default_factory=StagePolicy)
    sees: tuple[str, ...] = ()
    promotes_to: str | None = None
    rank: int = 0
    publish: bool | None = None  # None: derived (not frozen, no stage promotes to it)

    def as_config(self) -> dict[str, Any]:
        """A JSON/YAML-friendly mapping (inverse of :func:`stage_from_config`)."""
        config: dict[str, Any] = {
            "name": self.name,
            "rank": self.rank,
            "overwrite": self.policy.overwrite,
            "remove": self.policy.remove,
            "frozen": self.policy.frozen,
            "sees": list(self.sees),
            "promotes_to": self.promotes_to,
        }
        if self.publish is not None:
            config["publish"] = self.publish
        return config


def stage_from_config(data: Mapping[str, Any]) -> Stage:
    """Build a :class:`Stage` from a mapping as produced by :meth:`Stage.as_config`.

    Unknown keys and wrong types raise :class:`ConfigError` naming the stage and the key.
    """
    known = {"name", "rank", "overwrite", "remove", "frozen", "sees", "promotes_to", "publish"}
    name = data.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"stage configuration {dict(data)!r} needs a string 'name'")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"stage {name}: unknown configuration key(s) {', '.join(unknown)}")
    rank = data.get("rank", 0)
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise ConfigError(f"stage {name}: rank must be an integer, got {rank!r}")
    sees = data.get("sees", [])
    if isinstance(sees, str) or not isinstance(sees, Iterable):
        raise ConfigError(f"stage {name}: sees must be a list of stage names, got {sees!r}")
    sees_t = tuple(sees)
    if not all(isinstance(s, str) for s in sees_t):
        raise ConfigError(f"stage {name}: sees must be a list of stage names, got {sees!r}")
    promotes_to = data.get("promotes_to")
    if promotes_to is not None and not isinstance(promotes_to, str):
        raise ConfigError(f"stage {name}: promotes_to must be a stage name, got {promotes_to!r}")
    publish = data.get("publish")
    if publish is not None and not isinstance(publish, bool):
        raise ConfigError(f"stage {name}: publish must be true or false, got {publish!r}")
    try:
        policy = StagePolicy(
            overwrite=parse_rule(data.get("overwrite", "always"), "overwrite"),
            remove=parse_rule(data.get("remove", "always"), "remove"),
            frozen=cast(bool, data.get("frozen", False)),
        )
    except ConfigError as exc:
        raise ConfigError(f"stage {name}: {exc}") from None
    return Stage(
        name=name, policy=policy, sees=sees_t, promotes_to=promotes_to, rank=rank, publish=publish
    )


RULE_WORDS: dict[Rule, str] = {"always": "yes", "force": "force", "never": "never"}
"""How a rule is written in a stage configuration file: ``yes``, ``force`` or ``never``."""


def parse_rule(value: object, what: str = "rule") -> Rule:
    """A rule as written in a configuration: ``yes`` (or ``always``, or YAML's true),
    ``force``, ``never`` (or false). ConfigError otherwise."""
    if value is True or value == "yes":
        return "always"
    if value is False:
        return "never"
    for rule in RULES:
        if value == rule:
            return rule
    raise ConfigError(f"{what}={value!r} is not one of yes, force, never")


def stages_from_file_config(data: object, *, path: str) -> StageGraph:
    """The stage graph of a stage configuration file (``init --stages FILE``), parsed YAML.

    The file holds ``stages:``, a list of mappings: ``name``, ``sees`` (list), ``promotes_to``,
    ``overwrite`` / ``remove`` (``yes|force|never``), ``publish`` (bool), ``frozen`` (bool) and
    optionally ``rank``. Without ranks they are derived: a stage ranks above every stage that
    sees it or promotes to it (see :func:`derive_ranks`). ConfigError naming ``path`` and the
    rule otherwise.
    """
    items = data.get("stages") if isinstance(data, Mapping) else None
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k != "stages")
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (expected stages:)")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected `stages:` with a list of stages")
    parsed: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ConfigError(f"{path}: every stage must be a mapping, got {item!r}")
        parsed.append(dict(item))
    try:
        if not all("rank" in item for item in parsed):
            ranks = derive_ranks(parsed)
            for item in parsed:
                item.setdefault("rank", ranks.get(str(item.get("name")), 0))
        return StageGraph.from_config(parsed)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def derive_ranks(items: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Ranks for stages given without: 0 for a stage nothing sees or promotes to, else one
    more than the highest rank of those that do (so every rule of :class:`StageGraph` about
    ranks holds). ConfigError on a cycle."""
    incoming: dict[str, set[str]] = {}
    names = [str(item.get("name")) for item in items]
    for item in items:
        name = str(item.get("name"))
        incoming.setdefault(name, set())
        sees = item.get("sees") or []
        targets = [*sees] if isinstance(sees, list) else []
        if isinstance(item.get("promotes_to"), str):
            targets.append(item["promotes_to"])
        for other in targets:
            incoming.setdefault(str(other), set()).add(name)
    ranks: dict[str, int] = {}
    visiting: set[str] = set()

    def rank(name: str) -> int:
        if name in ranks:
            return ranks[name]
        if name in visiting:
            raise ConfigError(f"stage {name} is part of a sees/promotes_to cycle")
        visiting.add(name)
        value = max((rank(src) + 1 for src in incoming.get(name, ())), default=0)
        visiting.discard(name)
        ranks[name] = value
        return value

    for name in names:
        rank(name)
    return ranks


RESERVED_STAGE_NAMES = frozenset(
    {"search", "categories", "health", "package", "epr", "index.json", "favicon.ico", "metrics"}
)
"""First path segments the read API routes itself: a distribution with such a name could never
be reached as ``/{distribution}/...``."""


def _valid_stage_name(name: str) -> bool:
    # Stage names appear in URLs (/{distribution}/search, {distribution}@{tag}) and file names.
    if not name or len(name) > 64 or name[0] in "-." or name in RESERVED_STAGE_NAMES:
        return False
    return all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)


class StageGraph:
    """A validated set of stages. Immutable; build a new graph to change the configuration."""

    __slots__ = ("_by_name", "_order")

    def __init__(self, stages: Iterable[Stage]) -> None:
        stages_t = tuple(stages)
        by_name: dict[str, Stage] = {}
        for stage in stages_t:
            if stage.name in RESERVED_STAGE_NAMES:
                raise ConfigError(
                    f"stage name {stage.name!r} is reserved: /{stage.name} is a route of the"
                    " registry API, so the distribution could not be served under its name"
                )
            if not _valid_stage_name(stage.name):
                raise ConfigError(
                    f"stage name {stage.name!r} is not valid: use 1-64 ASCII letters, digits,"
                    " '-', '_' or '.', not starting with '-' or '.'"
                )
            if stage.name in by_name:
                raise ConfigError(f"stage {stage.name} is declared twice")
            by_name[stage.name] = stage
        if not by_name:
            raise ConfigError("a store needs at least one stage")
        self._by_name = by_name
        self._validate()
        # Most stable first; ties cannot happen inside one distribution (validated), the name
        # only makes the global order deterministic.
        self._order = tuple(sorted(by_name, key=lambda n: (-by_name[n].rank, n)))

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def default(cls) -> StageGraph:
        """snapshot -> staging -> production with the policies of design §1."""
        return cls(
            [
                Stage(
                    "snapshot",
                    StagePolicy(overwrite="always", remove="always"),
                    sees=("staging", "production"),
                    promotes_to="staging",
                    rank=0,
                ),
                Stage(
                    "staging",
                    StagePolicy(overwrite="force", remove="force"),
                    sees=("production",),
                    promotes_to="production",
                    rank=1,
                ),
                Stage(
                    "production",
                    StagePolicy(overwrite="never", remove="never"),
                    sees=(),
                    promotes_to=None,
                    rank=2,
                ),
            ]
        )

    @classmethod
    def from_config(cls, items: Iterable[Mapping[str, Any]]) -> StageGraph:
        return cls(stage_from_config(item) for item in items)

    def as_config(self) -> list[dict[str, Any]]:
        return [self._by_name[n].as_config() for n in self._order]

    def with_stage(self, stage: Stage) -> StageGraph:
        """A new graph with ``stage`` added (or replaced when a stage of that name exists)."""
        stages = {**self._by_name, stage.name: stage}
        return StageGraph(stages.values())

    def with_frozen_stage(
        self, name: str, *, sees: Sequence[str] = (), rank: int | None = None
    ) -> StageGraph:
        """A new graph with a frozen legacy stage (e.g. ``production-7.9``) added.

        Without ``rank`` the stage ranks above every existing stage, so its own copies win in
        its own distribution (it sees nothing else by default).
        """
        if rank is None:
            rank = max(s.rank for s in self._by_name.values()) + 1
        return self.with_stage(
            Stage(name, StagePolicy("never", "never", frozen=True), tuple(sees), None, rank)
        )

    def with_legacy_stage(self, name: str) -> StageGraph:
        """A new graph with a legacy stage (``production-7.9``, ``experimental``) that is not
        frozen yet: it sees no other stage, ranks above every stage, never overwrites or
        removes and takes no publish. An import fills it, then freezes it."""
        rank = max(s.rank for s in self._by_name.values()) + 1
        return self.with_stage(
            Stage(name, StagePolicy("never", "never"), (), None, rank, publish=False)
        )

    def with_frozen(self, name: str, frozen: bool) -> StageGraph:
        """A new graph with stage ``name`` frozen (or unfrozen); ConfigError when the graph
        would break a rule (e.g. a stage promotes to it)."""
        stage = self.stage(name)
        policy = StagePolicy(stage.policy.overwrite, stage.policy.remove, frozen=frozen)
        publish = stage.publish if not (frozen and stage.publish) else None
        return self.with_stage(
            Stage(stage.name, policy, stage.sees, stage.promotes_to, stage.rank, publish)
        )

    # --- validation ------------------------------------------------------------------------

    def _validate(self) -> None:
        by_name = self._by_name
        for stage in by_name.values():
            if stage.publish and stage.policy.frozen:
                raise ConfigError(
                    f"stage {stage.name} is frozen and publish: true: a frozen stage never"
                    " accepts a publish"
                )
            seen: set[str] = set()
            for other in stage.sees:
                if other not in by_name:
                    raise ConfigError(f"stage {stage.name} sees unknown stage {other}")
                if other == stage.name:
                    raise ConfigError(
                        f"stage {stage.name} lists itself in sees (a stage always sees itself)"
                    )
                if other in seen:
                    raise ConfigError(f"stage {stage.name} lists {other} twice in sees")
                seen.add(other)
            if stage.promotes_to is not None:
                if stage.promotes_to not in by_name:
                    raise ConfigError(
                        f"stage {stage.name} promotes to unknown stage {stage.promotes_to}"
                    )
                if stage.promotes_to == stage.name:
                    raise ConfigError(f"stage {stage.name} promotes to itself")
        # Cycles first (clearer message than the rank rule they would also break).
        self._check_cycles("sees", {n: s.sees for n, s in by_name.items()})
        self._check_cycles(
            "promotes_to",
            {n: (s.promotes_to,) if s.promotes_to else () for n, s in by_name.items()},
        )
        for stage in by_name.values():
            for other in stage.sees:
                if by_name[other].rank <= stage.rank:
                    raise ConfigError(
                        f"stage {stage.name} (rank {stage.rank}) sees {other} (rank"
                        f" {by_name[other].rank}): a stage may only see more stable stages"
                        " (higher rank)"
                    )
            if stage.promotes_to is not None:
                target = by_name[stage.promotes_to]
                if target.rank <= stage.rank:
                    raise ConfigError(
                        f"stage {stage.name} (rank {stage.rank}) promotes to {target.name}"
                        f" (rank {target.rank}): promotion must go to a more stable stage"
                    )
                if target.policy.frozen:
                    raise ConfigError(
                        f"stage {stage.name} promotes to {target.name}, which is frozen"
                    )
            ranks: dict[int, str] = {}
            for name in (stage.name, *stage.sees):
                rank = by_name[name].rank
                if rank in ranks:
                    raise ConfigError(
                        f"distribution {stage.name} sees stages {ranks[rank]} and {name} with"
                        f" the same rank {rank}: the winner of a clash would be undefined"
                    )
                ranks[rank] = name

    @staticmethod
    def _check_cycles(what: str, edges: Mapping[str, Sequence[str]]) -> None:
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            path.append(node)
            for nxt in edges[node]:
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    raise ConfigError(f"stage {what} has a cycle: {' -> '.join(cycle)}")
                if nxt not in state:
                    visit(nxt, path)
            path.pop()
            state[node] = 2

        for node in sorted(edges):
            if node not in state:
                visit(node, [])

    # --- queries ---------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Stage]:
        """Stages most stable first."""
        return (self._by_name[n] for n in self._order)

    def __len__(self) -> int:
        return len(self._by_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StageGraph) and self._by_name == other._by_name

    def __hash__(self) -> int:
        return hash(frozenset(self._by_name.values()))

    def __repr__(self) -> str:
        return f"StageGraph({list(self)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """Stage names, most stable first."""
        return self._order

    @property
    def stages(self) -> tuple[Stage, ...]:
        return tuple(self)

    def stage(self, name: str) -> Stage:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFoundError(
                f"stage {name} does not exist (stages: {', '.join(self._order)})"
            ) from None

    def distributions(self) -> tuple[str, ...]:
        """Every distribution name (one per stage), most stable first."""
        return self._order

    def resolution_order(self, distribution: str) -> tuple[str, ...]:
        """The stages ``distribution`` serves, most stable first (first one holding a version wins)."""
        stage = self.stage(distribution)
        names = (stage.name, *stage.sees)
        return tuple(sorted(names, key=lambda n: -self._by_name[n].rank))

    def affected_distributions(self, stage: str) -> tuple[str, ...]:
        """Every distribution that sees ``stage`` (itself included): the cascade of a change.

        Most stable first, e.g. a change in production affects (production, staging, snapshot).
        """
        self.stage(stage)
        return tuple(n for n in self._order if n == stage or stage in self._by_name[n].sees)

    def publishes(self, name: str) -> bool:
        """Does ``name`` accept a publish? Never when frozen; else its ``publish`` setting,
        or (not set) when no stage promotes to it."""
        stage = self.stage(name)
        if stage.policy.frozen:
            return False
        if stage.publish is not None:
            return stage.publish
        return all(s.promotes_to != name for s in self._by_name.values())

    def publish_stages(self) -> tuple[str, ...]:
        """Stages that accept a publish (:meth:`publishes`), least stable first."""
        return tuple(n for n in reversed(self._order) if self.publishes(n))

    def promotion_path(self, start: str) -> tuple[str, ...]:
        """``start`` and every stage it promotes to in turn, e.g. snapshot, staging, production."""
        path = [self.stage(start).name]
        while (nxt := self._by_name[path[-1]].promotes_to) is not None:
            path.append(nxt)
        return tuple(path)

    def promotion_target(self, source: str) -> str:
        """Where ``source`` promotes to; raises PolicyError when it promotes nowhere."""
        stage = self.stage(source)
        if stage.promotes_to is None:
            raise PolicyError(f"stage {source} promotes to no stage: it is the end of its path")
        return stage.promotes_to

    # --- policy checks ---------------------------------------------------------------------

    def _require_not_frozen(self, stage: Stage, what: str) -> None:
        if stage.policy.frozen:
            raise PolicyError(f"stage {stage.name} is frozen: {what}")

    def check_publish(self, stage: str) -> None:
        """Refuse a publish into a frozen stage or a stage filled only by promotion."""
        st = self.stage(stage)
        self._require_not_frozen(st, "it cannot be published to")
        if st.publish is True:
            return
        if st.publish is False:
            raise PolicyError(
                f"stage {stage} does not accept publishes (publish: false): publish to"
                f" {', '.join(self.publish_stages()) or 'no stage'} instead"
            )
        sources = sorted(s.name for s in self._by_name.values() if s.promotes_to == stage)
        if sources:
            raise PolicyError(
                f"stage {stage} is filled by promotion from {', '.join(sources)}: publish to"
                f" {', '.join(self.publish_stages()) or 'no stage'} instead"
            )

    def check_overwrite(
        self,
        stage: str,
        name: str,
        version: str,
        *,
        force: bool = False,
        reason: str | None = None,
    ) -> None:
        """May ``name version`` in ``stage`` be replaced by other bytes?

        ``always``: yes. ``force``: only with ``force`` (the reason, if any, is recorded by the
        service). ``never``: no. Call only when the bytes differ; same bytes are a no-op.
        """
        del reason  # accepted for symmetry with check_remove; the service records it
        st = self.stage(stage)
        what = f"{name} {version} exists with other bytes"
        self._require_not_frozen(st, f"it never changes: {what}")
        rule = st.policy.overwrite
        if rule == "never":
            raise PolicyError(f"stage {stage} never overwrites a version: {what}")
        if rule == "force" and not force:
            raise PolicyError(f"stage {stage} overwrites a version only when forced: {what}")

    def check_remove(
        self,
        stage: str,
        name: str,
        version: str,
        *,
        force: bool = False,
        reason: str | None = None,
    ) -> None:
        """May ``name version`` be removed from ``stage``?

        ``always``: yes. ``force``: only with ``force`` and a non-empty ``reason``. ``never``: no.
        """
        st = self.stage(stage)
        what = f"cannot remove {name} {version}"
        self._require_not_frozen(st, f"it never changes: {what}")
        rule = st.policy.remove
        if rule == "never":
            raise PolicyError(f"stage {stage} never removes a version: {what}")
        if rule == "force":
            if not force:
                raise PolicyError(f"stage {stage} removes a version only when forced: {what}")
            if not (reason and reason.strip()):
                raise PolicyError(
                    f"stage {stage} removes a version only with a reason: {what} without one"
                )

    def check_promote(self, source: str, target: str | None = None) -> str:
        """May a version move from ``source`` to ``target``? Returns the target stage.

        ``target`` defaults to the source's ``promotes_to``; any other target is refused, so a
        promotion always moves one step up the path. Neither stage may be frozen. Whether the
        target already holds the version with other bytes is :meth:`check_overwrite`'s call.
        """
        src = self.stage(source)
        if target is not None:
            self.stage(target)
        self._require_not_frozen(src, "nothing is promoted out of it")
        if src.promotes_to is None:
            raise PolicyError(f"stage {source} promotes to no stage: it is the end of its path")
        if target is not None and target != src.promotes_to:
            raise PolicyError(f"stage {source} promotes only to {src.promotes_to}, not to {target}")
        dst = self._by_name[src.promotes_to]
        self._require_not_frozen(dst, "nothing is promoted into it")
        return dst.name
