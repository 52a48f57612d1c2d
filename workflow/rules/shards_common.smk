# Shared definitions of sharded planning (rules in shards.smk; docs/scaling.md). With more selected runs
# than shards.above, every per-run stage is one job per shard of runs (SHARDS, common.smk) instead of one job
# per run and step, so that planning a portal backfill stays within seconds. A shard job runs, for each run
# of its shard, the per-run rules' own scripts with those rules' inputs, outputs, log, benchmark record and
# params (tomoseg.batch.shards): the per-run rules stay the one definition of each step, and every per-run
# file lands where they would put it. A finished step is not redone (done records under
# results/shards/done/); a failed run is recorded in its shard's record and its own log, its shard-mates go
# on, and the next invocation retries it.
from types import SimpleNamespace

if SHARDED:
    _unsharded = []
    if VARIANTS:
        _unsharded.append(f"the upstream ETSAM variants {sorted(VARIANTS)}")
    if tomos(source="copick"):
        _unsharded.append("copick rows")
    if OME_ZARR_OUT:
        _unsharded.append(f"output_format {config['output_format']}")
    if _unsharded:
        raise WorkflowError(
            f"invalid configuration: {len(SELECTED)} selected runs are planned in shards (more than "
            f"shards.above = {config['shards']['above']}), which does not cover {' and '.join(_unsharded)}; "
            "run those on fewer runs at a time, or raise shards.above (docs/scaling.md)"
        )

SHARD_PATTERN = r"s\d{5}"
ETSAM_METHODS = {"etsam", "etsam_stage1", "etsam_postprocessed"} & set(
    config["methods"]
)
SCOPE_ALL = config["targets"]["scope"] == "all"
EVALUATES = (
    bool(TRUTH_KEYS)
    and bool(config["methods"])
    and (SCOPE_ALL or config["targets"].get("metrics", True))
)


def _declared(files):
    """A rule's input or output as (name, pattern or function) pairs: unnamed ones as _i, unpack() with no name."""
    named = dict(files.items())
    pairs = []
    for i, item in enumerate(files):
        if any(item is v for v in named.values()):
            continue
        pairs.append((None, item) if callable(item) else (f"_{i}", str(item)))
    pairs += [(k, v if callable(v) else str(v)) for k, v in named.items()]
    return pairs


_RULE_TEMPLATES = {}


def rule_template(name):
    """Per-run rule `name`'s script, files, log, benchmark and params, read from the rule once (it is asked per step)."""
    if name not in _RULE_TEMPLATES:
        proxy = getattr(rules, name)
        _RULE_TEMPLATES[name] = SimpleNamespace(
            script=os.path.normpath(
                os.path.join(workflow.basedir, "rules", proxy.rule.script)
            ),
            input=_declared(proxy.input),
            output=_declared(proxy.output),
            log=str(proxy.log[0]),
            benchmark=str(proxy.benchmark) if proxy.rule.benchmark else None,
            params=list(proxy.params.items()),
        )
    return _RULE_TEMPLATES[name]


def _resolved(pairs, wildcards, wc):
    """Declared (name, pattern or function) pairs for these wildcards, as a dict."""
    resolved = {}
    for name, value in pairs:
        if name is None:
            resolved.update(value(wc))
        else:
            resolved[name] = value(wc) if callable(value) else value.format(**wildcards)
    return resolved


def rule_step(name, **wildcards):
    """The job of per-run rule `name` for these wildcards, as tomoseg.batch.shards.Step fields."""
    t = rule_template(name)
    wc = SimpleNamespace(**wildcards)
    return {
        "rule": name,
        "script": t.script,
        "input": _resolved(t.input, wildcards, wc),
        "output": _resolved(t.output, wildcards, wc),
        "log": t.log.format(**wildcards),
        "benchmark": t.benchmark.format(**wildcards) if t.benchmark else None,
        "params": {k: v(wc) if callable(v) else v for k, v in t.params},
        "wildcards": wildcards,
    }


def data_steps(tomo):
    """The rules that make a run's tomogram and ground truth, by its source and truth columns."""
    row = SELECTED[tomo]
    source, truth = row["source"], row["truth"]
    rule_names = {
        "cdp": ["download_tomogram"]
        + (["download_groundtruth"] if truth in SOURCE_TRUTHS["cdp"] else []),
        "phantom": ["phantom"],
        "local": ["import_local_tomogram"]
        + (["import_local_truth"] if truth == "local" else []),
    }[source]
    return [rule_step(r, tomo=tomo) for r in rule_names]


def etsam_steps(tomo):
    steps = [rule_step("etsam_stage1", tomo=tomo)]
    if {"etsam", "etsam_postprocessed"} & ETSAM_METHODS:
        steps.append(rule_step("etsam_stage2", tomo=tomo))
    return steps


def ablation_steps(tomo):
    """The prompt-mode ablation runs of a run with ground truth (Stage 1 modes first: Stage 2 reads one)."""
    if tomo not in TRUTH_KEYS:
        return []
    return [
        rule_step(f"etsam_ablation_stage{stage}", mode=mode, tomo=tomo)
        for stage in (1, 2)
        for mode in ablation_computed_modes(stage)
    ]


def evaluate_steps(tomo):
    if tomo not in TRUTH_KEYS:
        return []
    # the truth's θ map first: the evaluations read it
    steps = (
        [rule_step("theta_map", tomo=tomo)] if config["evaluate"]["theta_wise"] else []
    )
    return steps + [
        rule_step(
            "evaluate_scored" if m in SCORED_METHODS else "evaluate_mask",
            method=m,
            tomo=tomo,
        )
        for m in SCORED_METHODS + MASK_ONLY_METHODS
    ]


# Stage -> (steps of one run, the stages it reads); only the stages this config needs.
SHARD_STAGES = {
    "data": (data_steps, []),
    "normalize": (lambda t: [rule_step("normalize", tomo=t)], ["data"]),
}
if ETSAM_METHODS:
    SHARD_STAGES["etsam"] = (etsam_steps, ["normalize"])
if ABLATIONS and SCOPE_ALL:
    SHARD_STAGES["ablation"] = (ablation_steps, ["normalize", "etsam"])
if "etsam_postprocessed" in config["methods"]:
    SHARD_STAGES["postprocess"] = (
        lambda t: [rule_step("postprocess", tomo=t)],
        ["etsam"],
    )
for _tool in ("membrain", "tardis"):
    if _tool in config["methods"]:
        SHARD_STAGES[_tool] = (lambda t, r=_tool: [rule_step(r, tomo=t)], ["data"])
_made = [s for s in SHARD_STAGES if s != "data"]
if EVALUATES:
    SHARD_STAGES["evaluate"] = (evaluate_steps, _made)
if SCOPE_ALL and config["evaluate"]["overlays"] and config["methods"]:
    SHARD_STAGES["overlay"] = (
        lambda t: [rule_step("overlay", tomo=t), rule_step("tomogram_page", tomo=t)],
        _made + (["evaluate"] if EVALUATES else []),
    )


def shard_inputs(stage, **files):
    """Input function of a shard job: the records of the shards it reads, and the stage's shared files."""

    def inputs(wildcards):
        return {
            **{
                f"after_{s}": layout.shard_record(s, wildcards.shard)
                for s in SHARD_STAGES[stage][1]
            },
            **files,
        }

    return inputs


def shard_runs(stage):
    """Params of a shard job: each run of the shard with its steps of `stage`."""
    return lambda wildcards: {
        tomo: SHARD_STAGES[stage][0](tomo) for tomo in SHARDS[wildcards.shard]
    }


def shard_retry(stage):
    """Params of a shard job that change while its record lists failed runs, is unreadable or a per-run output is missing, so that the next invocation reruns it."""

    def token(wildcards):
        marker = layout.shard_record(stage, wildcards.shard)
        return layout.shard_retry_token(marker, shard_runs(stage)(wildcards))

    return token


def shard_runtime(minutes, steps=1):
    """Wall-time request of a shard job: a per-run rule's runtime times its steps per run and the shard's runs."""
    return lambda wildcards: minutes * steps * len(SHARDS[wildcards.shard])


def shard_targets():
    """The targets of a sharded run (of `all`): the status of every shard (after every stage), the tables and figures."""
    return [SHARD_STATUS] + (summary_targets() if SCOPE_ALL else [])
