"""Does exploring outside each customer's history find their latent interests?

First, on the product: the served default VW policy through the real server, with the default novelty
component (β = 0.1) against β = 0, on the same worlds and request streams (`bench/exploration_served.py`;
world seeds 1-2 with --quick, 1-3 otherwise). Its line ``GOAL discovery_served`` is the goal of this
script.

Then an in-process study of the mechanism, with a purpose-built learner (``GreedyByCategory`` below,
not the product's policy), which compares novelty with ε-greedy at the same exploration rate. Its
figures say how the mixture behaves given a nearly greedy past-behaviour learner; they are not a
measurement of the product, and its summary line is labelled so.

World of the study: `simulator.CustomerWorld`; some customers have a *latent* interest, a category they like a lot
but that their segment points away from. A legacy segment-marketing system first contacts everyone
with offers from their segment's top categories (that history is rebuilt into the history store and
trains the learner); "hidden" customers are those whose latent category it never showed. Then, on the
same request stream, through the real decision steps (rules -> policy pmf -> mixture -> seeded
two-stage draw -> label -> history update):

- ``learner_only``:   the learner alone, no exploration component (what it finds on its own);
- ``epsilon_greedy``: p = (1 - ε)·learner + ε·uniform over all arms, drawn in two stages (the uniform
                      component with probability ε) so its exploration draws are known;
- ``novelty``:        p = (1 - β)·learner + β·q_novel with β = ε, q_novel over the arms whose category
                      the customer was not shown within the horizon (`NoveltyConfig` defaults unless
                      ``--sweep`` compares others). β is 0 for a customer with nothing left outside the
                      history, so novelty explores *less* than ε overall (the "explored%" column).

The learner is a past-behaviour model (no data on a category -> score 0): per-customer smoothed
category means shrunk to the segment's, plus residual lifts per (segment, format, slot) and per
offer, served as a low-temperature softmax (nearly greedy), the same for every explorer. It learns
across customers and its shrinkage moves non-responders on to categories their segment answers, so it
finds a share of the hidden interests by itself; exploration also teaches it (a category found by one
customer's exploration draw is then exploited for others). Hence three measures, all printed:

- found overall: customers whose hidden interest got a positive response, whoever drew it;
- found *because of exploration*: found overall minus what the learner alone finds on the same world
  and request stream (the causal effect of adding the explorer; the goal's measure);
- found by a draw of the exploration component (the first positive response).

Those counts vary a lot from one draw stream to the next, hence several worlds x two draw streams and
a bootstrap interval over them.

Printed per world and stream, and in total: customers whose hidden latent interest was found (a
positive response in that category), how many of those first responses came from a draw of the
exploration component, all positive responses on hidden latent categories, reward per decision, the
exploration report; ``--sweep`` adds other settings, rates, a larger catalogue and the old learner
temperature; then the cost of each exploration step per decision on large arm sets.

    python bench/bench_exploration.py [--quick] [--sweep] [--temperature T] [--skip-study]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.exploration_served import served_comparison, served_lines  # noqa: E402
from offerbandit.reports.exposures import ExplorationReport, ExposureRecord, exploration_report  # noqa: E402
from policies.history import HistoryConfig, HistoryRecord, UserHistoryStore  # noqa: E402
from policies.novelty import NoveltyConfig, mix_for_history, novelty_mixture, outside_history_mask  # noqa: E402
from policies.rules import FrequencyCap, QuietHours, RulesConfig, apply_rules  # noqa: E402
from policies.sampler import (  # noqa: E402
    EXPLOIT,
    EXPLORE,
    EXPLORE_OUTSIDE_HISTORY,
    event_seed,
    exploration_label,
    two_stage_draw,
)
from policies.types import ArmSet, DecisionContext, Offer  # noqa: E402
from simulator import CustomerWorld, WorldConfig  # noqa: E402
from simulator.config import CATEGORIES  # noqa: E402
from simulator.population import CATEGORY_GIVEN_SEGMENT, SEGMENTS  # noqa: E402

SECRET = b"bench-exploration-secret-32bytes"
DAY = 86_400.0
LEGACY_TOP_CATEGORIES = 3
EXPLORERS = ("learner_only", "epsilon_greedy", "novelty")
# The learner's softmax temperature. At 0.005 it is nearly greedy (about 18% of its draws leave its
# argmax, on near-ties); at 0.02 it was 38%, an exploration of its own that both explorers share.
TEMPERATURE = 0.005


class GreedyByCategory:
    """A past-behaviour learner: per-customer smoothed category means, shrunk towards the customer's
    segment's category means, plus per-segment lifts for (format, slot) and population lifts per offer."""

    def __init__(self, arm_set: ArmSet, user_ids: tuple[str, ...], segments: tuple[str, ...],
                 prior_weight: float = 5.0) -> None:
        categories = sorted({arm_set.offer_of(a).category for a in arm_set.arms})
        pairs = sorted({(a.format, a.time_slot) for a in arm_set.arms})
        offers = sorted(arm_set.offers)
        self.arm_category = np.array([categories.index(arm_set.offer_of(a).category) for a in arm_set.arms])
        self.arm_pair = np.array([pairs.index((a.format, a.time_slot)) for a in arm_set.arms])
        self.arm_offer = np.array([offers.index(a.offer_id) for a in arm_set.arms])
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        self.segment_index = {s: i for i, s in enumerate(segments)}
        self.k = prior_weight
        n_seg = len(segments)
        self.user_sum = np.zeros((len(user_ids), len(categories)))
        self.user_n = np.zeros((len(user_ids), len(categories)))
        self.cat_sum, self.cat_n = np.zeros((n_seg, len(categories))), np.zeros((n_seg, len(categories)))
        self.pair_sum, self.pair_n = np.zeros((n_seg, len(pairs))), np.zeros((n_seg, len(pairs)))
        self.offer_sum, self.offer_n = np.zeros(len(offers)), np.zeros(len(offers))
        self.seg_sum, self.seg_n = np.zeros(n_seg), np.zeros(n_seg)

    def _parts(self, u: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # A category the segment has no data on scores 0: the learner only recommends from past
        # behaviour (the filter bubble the novelty component is meant to break).
        cat_mean = self.cat_sum[g] / (self.cat_n[g] + self.k)
        user_cat = (self.user_sum[u] + self.k * cat_mean) / (self.user_n[u] + self.k)
        # Lifts are fitted on residuals (backfitting), so they are not confounded by which categories
        # happened to be shown with which (format, slot).
        pair_lift = self.pair_sum[g] / (self.pair_n[g] + self.k)
        offer_lift = self.offer_sum / (self.offer_n + self.k)
        return user_cat, pair_lift, offer_lift

    def scores(self, user_id: str, segment: str) -> np.ndarray:
        user_cat, pair_lift, offer_lift = self._parts(self.user_index[user_id], self.segment_index[segment])
        return user_cat[self.arm_category] + pair_lift[self.arm_pair] + offer_lift[self.arm_offer]

    def pmf(self, user_id: str, segment: str, temperature: float) -> np.ndarray:
        """Boltzmann over the scores; a low temperature is nearly greedy."""
        z = self.scores(user_id, segment) / temperature
        w = np.exp(z - z.max())
        return w / w.sum()

    def learn(self, user_id: str, segment: str, arm_index: int, reward: float) -> None:
        u, g, c = self.user_index[user_id], self.segment_index[segment], self.arm_category[arm_index]
        pair, offer = self.arm_pair[arm_index], self.arm_offer[arm_index]
        user_cat, pair_lift, offer_lift = self._parts(u, g)
        self.pair_sum[g, pair] += reward - user_cat[c] - offer_lift[offer]
        self.pair_n[g, pair] += 1
        self.offer_sum[offer] += reward - user_cat[c] - pair_lift[pair]
        self.offer_n[offer] += 1
        self.user_sum[u, c] += reward - pair_lift[pair] - offer_lift[offer]
        self.user_n[u, c] += 1
        self.cat_sum[g, c] += reward - pair_lift[pair] - offer_lift[offer]
        self.cat_n[g, c] += 1
        self.seg_sum[g] += reward
        self.seg_n[g] += 1


@dataclass(frozen=True)
class RunResult:
    explorer: str
    decisions: int
    mean_reward: float
    hidden_customers: int          # customers with a latent interest in a category never shown to them
    discovered: int                # ... of whom answered an offer from that category during the run
    discovered_by_exploration: int # ... the first time on a draw not labelled exploit
    discovered_by_component: int   # ... the first time on a draw of the exploration component
    exploration_share: float       # share of draws from the exploration component (ε or β)
    rate: float                    # the ε or β the run was given (0 for the learner alone)
    latent_hits: int               # positive responses on those hidden latent categories
    latent_exposures: int          # exposures of those hidden latent categories
    report: ExplorationReport


@dataclass
class WarmStart:
    """What a legacy segment-marketing system left behind: a history and a learner trained on it."""

    learner: GreedyByCategory
    history: list[HistoryRecord]
    hidden: dict[str, str]          # customer -> latent category never shown by the legacy system
    world: CustomerWorld            # the world at the end of the legacy period (cloned by each run)


def legacy_warm_start(config: WorldConfig, n_legacy: int, prior_weight: float) -> WarmStart:
    """Run the legacy system on a copy of the world: each contact is an offer from one of the top
    ``LEGACY_TOP_CATEGORIES`` categories of the customer's segment, in a random format and slot."""
    world = CustomerWorld(config)
    arm_set = world.arm_set
    categories = [arm_set.offer_of(a).category for a in arm_set.arms]
    learner = GreedyByCategory(arm_set, world.user_ids, SEGMENTS, prior_weight)
    rng = np.random.default_rng(config.seed + 1_000)
    top = {seg: {CATEGORIES[c] for c in np.argsort(-CATEGORY_GIVEN_SEGMENT[g])[:LEGACY_TOP_CATEGORIES]}
           for g, seg in enumerate(SEGMENTS)}
    allowed = {seg: np.flatnonzero([c in cats for c in categories]) for seg, cats in top.items()}
    history, shown = [], {}
    for i in range(n_legacy):
        request = world.next_request()
        segment = request.context["segment"]
        index = int(rng.choice(allowed[segment]))
        arm = arm_set.arms[index]
        reward = world.respond(request, arm)
        learner.learn(request.user_id, segment, index, reward)
        history.append(HistoryRecord(user_key=request.user_id, event_id=f"legacy-{i}", when=request.time,
                                     arm=arm, category=categories[index], counted=True, reward=reward))
        shown.setdefault(request.user_id, set()).add(categories[index])
    hidden = {u: c for u in world.user_ids for c in CATEGORIES[:config.n_categories]
              if world.is_latent(u, c) and c not in shown.get(u, set())}
    return WarmStart(learner=learner, history=history, hidden=hidden, world=world)


def run(explorer: str, warm: WarmStart, *, n_requests: int, epsilon: float, horizon_days: float,
        temperature: float = TEMPERATURE, novelty: NoveltyConfig | None = None, stream: str = "") -> RunResult:
    """One explorer on the warm-started world, exploring with probability ``epsilon``.

    ``epsilon_greedy`` is drawn in two stages too (uniform component with probability ε), so for both
    explorers the exploration component of each draw is known. ``novelty`` sets the novelty explorer's
    component (default: `NoveltyConfig()`); its ``beta`` is replaced by ``epsilon`` unless it shrinks
    with history (``shrink_half_life``), where ``beta`` is kept as given. ``learner_only`` has no
    exploration component (``epsilon`` is ignored). ``stream`` salts the draw seeds: another stream of
    draws on the same world."""
    if explorer not in EXPLORERS:
        raise ValueError(f"explorer must be one of {EXPLORERS}")
    world = warm.world.clone()
    arm_set = world.arm_set
    categories = [arm_set.offer_of(a).category for a in arm_set.arms]
    learner = copy.deepcopy(warm.learner)
    store = UserHistoryStore(HistoryConfig(horizon_s=horizon_days * DAY))
    store.rebuild(warm.history)
    novelty = novelty or NoveltyConfig()
    if novelty.shrink_half_life is None:
        novelty = replace(novelty, beta=epsilon, beta_min=0.0)
    rate = {"learner_only": 0.0, "epsilon_greedy": epsilon, "novelty": novelty.beta}[explorer]
    rules = RulesConfig()

    records: list[ExposureRecord] = []
    rewards = np.zeros(n_requests)
    latent_hits = latent_exposures = by_exploration = by_component = explored = 0
    discovered: set[str] = set()
    for i in range(n_requests):
        request = world.next_request()
        user, segment, now = request.user_id, request.context["segment"], request.time
        with store.locked(user) as history_of_user:
            history = history_of_user.snapshot(now)
            eligible = apply_rules(arm_set, request.decision_context(), history, now, rules)
            p_learner = learner.pmf(user, segment, temperature)[eligible.kept]
            p_learner /= p_learner.sum()
            if explorer != "novelty":  # ε·uniform over every eligible arm, as a second component (or none)
                mixture = novelty_mixture(p_learner, np.ones(len(p_learner), dtype=bool), rate, 1.0)
            else:
                mixture = mix_for_history(p_learner, eligible.arm_set, history, novelty)
            draw = two_stage_draw(mixture, event_seed(SECRET, "bench", f"{stream}{explorer}-{i}"))
            label = exploration_label(draw, mixture.p_policy)
            if explorer != "novelty" and label == EXPLORE_OUTSIDE_HISTORY:
                label = EXPLOIT if draw.index == int(np.argmax(mixture.p_policy)) else EXPLORE
            from_exploration = draw.component == "novelty"
            arm = eligible.arm_set.arms[draw.index]
            category = categories[eligible.kept[draw.index]]
            history_of_user.record_contact(event_id=str(i), when=now, arm=arm, category=category, counts=True)
            reward = world.respond(request, arm)
            history_of_user.record_response(event_id=str(i), when=now, arm=arm, category=category, reward=reward)
        learner.learn(user, segment, int(eligible.kept[draw.index]), reward)
        rewards[i] = reward
        explored += from_exploration
        if warm.hidden.get(user) == category:
            latent_exposures += 1
            if reward > 0:
                latent_hits += 1
                if user not in discovered:
                    by_exploration += label != EXPLOIT
                    by_component += from_exploration
                discovered.add(user)
        records.append(ExposureRecord(user_key=user, when=now, offer_id=arm.offer_id, category=category,
                                      format=arm.format, time_slot=arm.time_slot, exploration=label,
                                      reward=reward, new_category=category not in history.shown_categories))
    return RunResult(explorer=explorer, decisions=n_requests, mean_reward=float(rewards.mean()),
                     hidden_customers=len(warm.hidden), discovered=len(discovered),
                     discovered_by_exploration=by_exploration, discovered_by_component=by_component,
                     exploration_share=explored / n_requests, rate=rate, latent_hits=latent_hits,
                     latent_exposures=latent_exposures,
                     report=exploration_report(records, catalogue=list(arm_set.offers)))


def _time_per_call(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def pipeline_costs(n_offers: int, repeats: int) -> dict[str, float]:
    """Seconds per call of each step on n_offers x 3 formats x 2 slots arms, for a customer with history."""
    categories = [f"cat{i % 20}" for i in range(n_offers)]
    offers = [Offer(f"offer_{i}", {"category": c, "offer_type": "upsell"}) for i, c in enumerate(categories)]
    arm_set = ArmSet.product(offers, ["sms", "email", "push"], ["morning", "evening"])
    store = UserHistoryStore(HistoryConfig())
    for i in range(50):
        arm = arm_set.arms[i * 7]
        store.record_contact("u", event_id=str(i), when=float(i), arm=arm,
                             category=arm_set.offer_of(arm).category, counts=True)
    history = store.snapshot("u", 100.0)
    context = DecisionContext(user_key="u", context={"open_service_problem": "false"})
    rules = RulesConfig(caps=(FrequencyCap("sms", 3, 7 * DAY), FrequencyCap("*", 10, 7 * DAY)),
                        quiet_hours=(QuietHours("push", 22, 7),))
    rng = np.random.default_rng(0)
    p_policy = rng.dirichlet(np.ones(len(arm_set)))
    config = NoveltyConfig(beta=0.1)
    mixture = mix_for_history(p_policy, arm_set, history, config)
    mask = outside_history_mask(arm_set, history, config.dimensions)
    seed = event_seed(SECRET, "c", "e")
    return {
        "arms": float(len(arm_set)),
        "snapshot": _time_per_call(lambda: store.snapshot("u", 100.0), repeats),
        "apply_rules": _time_per_call(lambda: apply_rules(arm_set, context, history, 100.0, rules), repeats),
        "outside_mask": _time_per_call(lambda: outside_history_mask(arm_set, history, ("category",)), repeats),
        "mixture": _time_per_call(lambda: novelty_mixture(p_policy, mask, 0.1, 0.1), repeats),
        "mix_for_history": _time_per_call(lambda: mix_for_history(p_policy, arm_set, history, config), repeats),
        "seed+draw": _time_per_call(lambda: two_stage_draw(mixture, event_seed(SECRET, "c", "e")), repeats),
        "record_contact": _time_per_call(
            lambda: store.record_contact("v", event_id=str(rng.random()), when=100.0, arm=arm_set.arms[0],
                                         category="cat0", counts=True), repeats),
        "draw_only": _time_per_call(lambda: two_stage_draw(mixture, seed), repeats),
    }


@dataclass(frozen=True)
class Comparison:
    """The explorers on the same worlds: one (learner alone, ε-greedy, novelty) triple of runs per
    (seed, draw stream)."""

    units: tuple[str, ...]
    learner_only: tuple[RunResult, ...]
    epsilon_greedy: tuple[RunResult, ...]
    novelty: tuple[RunResult, ...]
    rate_matched: bool = False     # novelty's β was rescaled towards ε-greedy's exploration share

    def total(self, explorer: str, attr: str, units: np.ndarray | None = None) -> float:
        runs = getattr(self, explorer)
        return float(sum(getattr(runs[i], attr) for i in (range(len(runs)) if units is None else units)))

    def ratio(self, attr: str, units: np.ndarray | None = None) -> float:
        """Novelty over ε-greedy, on totals over the units (means for ``mean_reward``: equal run lengths)."""
        baseline = self.total("epsilon_greedy", attr, units)
        return self.total("novelty", attr, units) / baseline if baseline else float("nan")

    def lift_ratio(self, attr: str, units: np.ndarray | None = None) -> float:
        """(novelty - learner alone) / (ε-greedy - learner alone), on totals over the units: how much
        more of ``attr`` adding the novelty explorer brings than adding ε-greedy."""
        alone = self.total("learner_only", attr, units)
        baseline = self.total("epsilon_greedy", attr, units) - alone
        return (self.total("novelty", attr, units) - alone) / baseline if baseline > 0 else float("nan")

    def unit_ratios(self, attr: str) -> list[float]:
        return [getattr(n, attr) / getattr(e, attr) if getattr(e, attr) else float("nan")
                for e, n in zip(self.epsilon_greedy, self.novelty)]

    def interval(self, attr: str, n_boot: int = 2000, level: float = 0.9, *,
                 statistic: str = "ratio") -> tuple[float, float]:
        """Percentile bootstrap interval of `ratio` (or `lift_ratio`) over the units (worlds and streams
        resampled)."""
        measure = getattr(self, statistic)
        rng = np.random.default_rng(0)
        n = len(self.units)
        ratios = [measure(attr, rng.integers(0, n, n)) for _ in range(n_boot)]
        return (float(np.nanquantile(ratios, (1 - level) / 2)), float(np.nanquantile(ratios, (1 + level) / 2)))


_WARM: dict[tuple, WarmStart] = {}
_RUNS: dict[tuple, RunResult] = {}

#: How close novelty's realised exploration share must come to ε-greedy's when rates are matched.
RATE_TOLERANCE = 0.002


def _cached_run(key: tuple, explorer: str, warm: WarmStart, **kwargs) -> RunResult:
    full_key = (key, explorer, tuple(sorted(kwargs.items())))
    if full_key not in _RUNS:
        _RUNS[full_key] = run(explorer, warm, **kwargs)
    return _RUNS[full_key]


def _rate_matched_novelty(key: tuple, warm: WarmStart, target_share: float, novelty: NoveltyConfig | None,
                          common: dict, max_runs: int = 5) -> RunResult:
    """Novelty with β rescaled until its realised exploration share is within `RATE_TOLERANCE` of
    ``target_share`` (β = ε explores less: β is 0 for a customer with nothing outside the history)."""
    beta = common["epsilon"]
    for _ in range(max_runs):
        result = _cached_run(key, "novelty", warm, **{**common, "epsilon": round(beta, 6)}, novelty=novelty)
        if abs(result.exploration_share - target_share) <= RATE_TOLERANCE or result.exploration_share == 0:
            break
        beta = min(1.0, beta * target_share / result.exploration_share)
    return result


def compare(seeds: tuple[int, ...], n_customers: int, *, n_offers: int = 12, epsilon: float = 0.1,
            novelty: NoveltyConfig | None = None, temperature: float = TEMPERATURE, streams: tuple[str, ...] = ("",),
            legacy_per_customer: int = 10, run_per_customer: int = 20, horizon_days: float = 90.0,
            match_rate: bool = True) -> Comparison:
    """The experiment of this module on each seed's world and each draw stream (see the module
    docstring). With ``match_rate`` (and a constant β), novelty's β is rescaled per world and stream
    until it explores as often as ε-greedy ("the same total exploration rate"); otherwise β = ε.
    Warm starts and runs are computed once per process and reused."""
    units, alone_runs, eps_runs, novelty_runs = [], [], [], []
    matched = match_rate and (novelty is None or novelty.shrink_half_life is None)
    for seed in seeds:
        world_key = (seed, n_customers, n_offers, legacy_per_customer)
        if world_key not in _WARM:
            config = WorldConfig(seed=seed, n_customers=n_customers, n_offers=n_offers, base_rate=0.03,
                                 latent_share=0.5)
            _WARM[world_key] = legacy_warm_start(config, legacy_per_customer * n_customers, prior_weight=5.0)
        warm = _WARM[world_key]
        for stream in streams:
            common = dict(n_requests=run_per_customer * n_customers, epsilon=epsilon, horizon_days=horizon_days,
                          temperature=temperature, stream=stream)
            baseline = _cached_run(world_key, "epsilon_greedy", warm, **common)
            units.append(f"{seed}{stream}")
            alone_runs.append(_cached_run(world_key, "learner_only", warm, **{**common, "epsilon": 0.0}))
            eps_runs.append(baseline)
            if matched:
                novelty_runs.append(_rate_matched_novelty(world_key, warm, baseline.exploration_share, novelty, common))
            else:
                novelty_runs.append(_cached_run(world_key, "novelty", warm, **common, novelty=novelty))
    return Comparison(tuple(units), tuple(alone_runs), tuple(eps_runs), tuple(novelty_runs), rate_matched=matched)


def _print_runs(comparison: Comparison) -> None:
    print(f"{'explorer':16s}{'seed':>5s}{'rate':>6s}{'reward/dec':>11s}{'discovered':>12s}{'by expl.':>9s}{'latent hits':>12s}"
          f"{'explored%':>10s}{'outside%':>9s}{'coverage':>9s}{'cats/10':>8s}{'gini':>7s}")
    runs = zip(comparison.learner_only, comparison.epsilon_greedy, comparison.novelty)
    for unit, triple in zip(comparison.units, runs):
        for result in triple:
            r = result.report
            print(f"{result.explorer:16s}{unit:>5s}{result.rate:6.3f}{result.mean_reward:11.4f}"
                  f"{result.discovered:7d}/{result.hidden_customers:<4d}{result.discovered_by_component:9d}"
                  f"{result.latent_hits:12d}{100 * result.exploration_share:10.1f}"
                  f"{100 * r.share_outside_history:9.1f}{r.catalogue_coverage:9.3f}"
                  f"{r.distinct_categories_last_n:8.2f}{r.exposure_gini:7.3f}")


def _summary(comparison: Comparison) -> str:
    low, high = comparison.interval("discovered")
    lift_low, lift_high = comparison.interval("discovered", statistic="lift_ratio")
    spread = comparison.unit_ratios("discovered")
    share = {e: comparison.total(e, "exploration_share") / len(comparison.units)
             for e in ("epsilon_greedy", "novelty")}
    return (f"found because of exploration x{comparison.lift_ratio('discovered'):.2f} (90% interval "
            f"{lift_low:.2f}-{lift_high:.2f}), found overall x{comparison.ratio('discovered'):.2f} (90% interval "
            f"{low:.2f}-{high:.2f}; per world {min(spread):.2f}-{max(spread):.2f}), "
            f"by the exploration component x{comparison.ratio('discovered_by_component'):.2f}, "
            f"latent hits x{comparison.ratio('latent_hits'):.2f}, reward x{comparison.ratio('mean_reward'):.3f}, "
            f"explored {100 * share['novelty']:.1f}% vs {100 * share['epsilon_greedy']:.1f}% "
            f"(mean beta {comparison.total('novelty', 'rate') / len(comparison.units):.3f}"
            f"{_unmatched_note(comparison)})")


def _unmatched_note(comparison: Comparison) -> str:
    """Why a rate-matched comparison may still explore less: novelty cannot spend more than the
    decisions that have arms outside the customer's history."""
    gaps = [e.exploration_share - n.exploration_share for e, n in zip(comparison.epsilon_greedy, comparison.novelty)]
    if not comparison.rate_matched or max(gaps) <= RATE_TOLERANCE:
        return ""
    return "; rate not reached in every world: too few decisions have arms outside the history"


def _goal_line(comparison: Comparison) -> str:
    """The study's target: at the same exploration rate, the novelty explorer finds hidden interests at
    least twice as often as ε-greedy (found because of exploration), at no worse reward. Not a goal of
    the product (the learner is GreedyByCategory): the product's is ``GOAL discovery_served``."""
    lift = comparison.lift_ratio("discovered")
    reward = comparison.ratio("mean_reward")
    low, _ = comparison.interval("discovered", statistic="lift_ratio")
    met = lift >= 2.0 and reward >= 1.0
    return (f"in-process study (GreedyByCategory learner, not the served policy) discovery_because_of_exploration: "
            f"x{lift:.2f} (90% interval from {low:.2f}; target >= 2) at reward x{reward:.3f} (target >= 1) -> "
            f"{'met' if met else 'NOT met'}; counting what the learner finds alone too: "
            f"x{comparison.ratio('discovered'):.2f}")


#: Settings compared by ``--sweep`` (each against ε-greedy with ε = β).
SWEEP: dict[str, NoveltyConfig] = {
    "default": NoveltyConfig(),
    "floor 0.5, per arm (old default)": NoveltyConfig(floor=0.5, floor_spread="arm"),
    "floor 0.25": NoveltyConfig(floor=0.25),
    "floor 0": NoveltyConfig(floor=0.0),
    "history = responded": NoveltyConfig(history_basis="responded"),
    "history = shown at least 2 times": NoveltyConfig(history_basis="shown_min_k", min_shown=2),
    "beta 0.2 shrinking, h0 = 20 contacts": NoveltyConfig(beta=0.2, shrink_half_life=20.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--sweep", action="store_true", help="also compare other settings, rates and catalogues")
    parser.add_argument("--temperature", type=float, default=TEMPERATURE, help="the learner's softmax temperature")
    parser.add_argument("--skip-study", action="store_true", help="only the served measurement")
    args = parser.parse_args()

    served_seeds = (1, 2) if args.quick else (1, 2, 3)
    served_customers = 300 if args.quick else 500
    print(f"served VW policy through the real server: {len(served_seeds)} world seeds x {served_customers} customers "
          f"x 20 decisions, novelty beta 0.1 (the default) vs 0, the default VW policy, no legacy history")
    for line in served_lines(served_comparison(served_seeds, served_customers, 20, registry_wait_s=120.0)):
        print(line, flush=True)
    if args.skip_study:
        return
    print("\nin-process study of the mechanism (purpose-built GreedyByCategory learner, not the product's policy):")
    n_customers = 300 if args.quick else 800
    seeds = (1, 2) if args.quick else (1, 2, 3, 4, 5, 6, 7, 8)
    streams = ("",) if args.quick else ("", "b")  # two streams of draws on each world
    epsilon = 0.1

    print(f"latent-interest discovery: {len(seeds)} world seeds x {len(streams)} draw streams x {n_customers} "
          f"customers, 10 legacy contacts (segment top-{LEGACY_TOP_CATEGORIES} categories) then 20 decisions per "
          f"customer; eps = {epsilon}, novelty's beta rescaled per world and stream to the same exploration rate; "
          f"horizon 90 days, learner temperature {args.temperature}; novelty: {NoveltyConfig()}")
    main_run = compare(seeds, n_customers, epsilon=epsilon, temperature=args.temperature, streams=streams)
    _print_runs(main_run)
    found = ", ".join(f"{e} {main_run.total(e, 'discovered'):.0f}" for e in EXPLORERS)
    print(f"customers found in total: {found}, of {main_run.total('novelty', 'hidden_customers'):.0f} hidden")
    print(f"novelty / epsilon_greedy: {_summary(main_run)}")
    unmatched = compare(seeds, n_customers, epsilon=epsilon, temperature=args.temperature, streams=streams,
                        match_rate=False)
    print(f"with beta = eps (novelty explores less): {_summary(unmatched)}")
    print(_goal_line(main_run))

    if args.sweep:
        print("\nsettings (novelty / epsilon_greedy at the same exploration rate, except shrinking beta):")
        for name, config in SWEEP.items():
            result = main_run if name == "default" else compare(
                seeds, n_customers, epsilon=epsilon, novelty=config, temperature=args.temperature, streams=streams)
            print(f"  {name:38s} {_summary(result)}", flush=True)
        for label, kwargs in (("eps = 0.05", {"epsilon": 0.05}), ("eps = 0.2", {"epsilon": 0.2}),
                              ("24 offers", {"n_offers": 24}), ("learner temperature 0.02", {"temperature": 0.02})):
            kwargs.setdefault("temperature", args.temperature)
            result = compare(seeds, n_customers, streams=streams, **kwargs)
            print(f"  default, {label:29s} {_summary(result)}", flush=True)

    repeats = 200 if args.quick else 1000
    print("\nper-call cost of the exploration steps (one customer with 50 contacts):")
    for n_offers in (100, 500):
        costs = pipeline_costs(n_offers, repeats)
        steps = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in costs.items() if k != "arms")
        print(f"  {int(costs['arms'])} arms: {steps}")


if __name__ == "__main__":
    main()
