"""How many pairs each population trains: pure arithmetic on the pending pairs' population keys and costs
(computed once, by the plan), the number of slots and the study's cap. No Ray, no Optuna, no core."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


class Costed(Protocol):
    """What packing reads of a pending pair (planning.PendingPair)."""

    @property
    def key(self) -> Hashable: ...  # its population key: pairs of equal keys stack

    @property
    def cost(self) -> float: ...  # what the pair costs to train (multiply-accumulates)

    @property
    def overhead(self) -> float: ...  # what a population of its shape costs besides its members


def population_cap(size: int, pairs: int, slots: int) -> int:
    """Members per population at most for `pairs` pending pairs and `slots` populations at once: the
    study's resolved `resources.population`, but no more than spreads the pairs over every slot."""
    return max(1, min(size, math.ceil(pairs / max(1, slots))))


def population_cost(pending: int, pair: float, overhead: float, size: int) -> float:
    """What the next population of a shape costs: its own cost, and its members' (`size`, or the pairs left)."""
    return overhead + pair * min(size, pending)


def pending_work(pairs: Iterable[Costed]) -> dict[Hashable, tuple[int, float, float]]:
    """Each network shape among `pairs`, in their order: (pending pairs, what a pair costs, what a population
    costs besides its members)."""
    work: dict[Hashable, tuple[int, float, float]] = {}
    for pair in pairs:
        count = work[pair.key][0] if pair.key in work else 0
        work[pair.key] = (count + 1, pair.cost, pair.overhead)
    return work


def population_sizes(
    work: Mapping[Hashable, tuple[int, float, float]],
    most: int,
    slots: int,
    fits: Mapping[Hashable, int] | None = None,
) -> dict[Hashable, int]:
    """Members per population for each network shape, from its (pending pairs, what a pair costs, what a
    population costs besides its members), at most `most`, and at most `fits[key]` for a shape whose
    members fill a device's memory at that many: the sizes whose populations, handed out
    costliest first to `slots` slots (as the front does), end soonest in a simulation of that hand-out.
    It starts from the largest populations (each shape in as few as `most` allows) and splits, one
    population more at a time, the shape whose split ends the study soonest, while that helps; the rule
    before costs (one size for all shapes, no more than spreads the pairs over the slots) is a candidate
    too. A costly shape (a D 16x wider) is then split over the slots rather than trained on one core while
    the other waits, and a split must save more than the extra population's own cost."""
    counts = {key: count for key, (count, _, _) in work.items()}
    cap = {key: max(1, min(most, (fits or {}).get(key, most))) for key in counts}

    def sizes_of(parts: Mapping[Hashable, int]) -> dict[Hashable, int]:
        return {key: max(1, math.ceil(counts[key] / parts[key])) for key in counts}

    def ends(sizes: Mapping[Hashable, int]) -> float:
        jobs = sorted(
            (
                population_cost(count - i, pair, overhead, sizes[key])
                for key, (count, pair, overhead) in work.items()
                for i in range(0, count, sizes[key])
            ),
            reverse=True,
        )
        free = [0.0] * max(1, slots)
        for job in jobs:  # each on the slot that frees first
            free[free.index(min(free))] += job
        return max(free)

    parts = {key: max(1, math.ceil(count / cap[key])) for key, count in counts.items()}
    best = ends(sizes_of(parts))
    while True:
        options = [{**parts, key: parts[key] + 1} for key in counts if parts[key] < counts[key]]
        timed = [(ends(sizes_of(option)), i) for i, option in enumerate(options)]
        if not timed or min(timed)[0] >= best * (1 - 1e-9):
            break
        best, chosen = min(timed)
        parts = options[chosen]
    plan = sizes_of(parts)
    uniform = max(1, min(most, math.ceil(sum(counts.values()) / max(1, slots))))
    flat = {key: min(uniform, count, cap[key]) for key, count in counts.items()}
    return flat if ends(flat) < best * (1 - 1e-9) else plan


@dataclass(frozen=True)
class Packing:
    """The population sizes of one run of the plan: per network shape, and the cap for shapes sampled later."""

    most: int  # members per population at most (a search's shapes sampled later get this)
    sizes: Mapping[Hashable, int]  # population key -> members per population

    @classmethod
    def of(
        cls, pairs: Iterable[Costed], *, most: int, slots: int, fits: Mapping[Hashable, int] | None = None
    ) -> Packing:
        """Sizes for `pairs`, at most `most` members each (and `fits[key]` for a shape that fills a device's
        memory at that many), handed out to `slots` slots."""
        return cls(most, population_sizes(pending_work(pairs), most, slots, fits))

    def size(self, key: Hashable) -> int:
        """Members of the next population of this shape."""
        return self.sizes.get(key, self.most)


__all__ = ["Costed", "Packing", "pending_work", "population_cap", "population_cost", "population_sizes"]
