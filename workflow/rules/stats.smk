# Summary tables from the per-tomogram metrics: Table 1, paired tests, Supplementary Tables 1-3,
# thresholds, calibration, AUPRC, single vs two stage, paper comparison and the failures table.


rule summarize:
    input:
        metrics=summary_metrics(),
    output:
        table1=report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        failures=report(
            "results/tables/failures.csv",
            caption="../report/failures.rst",
            category="Tables",
        ),
        paper_comparison=report(
            "results/tables/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Tables",
        ),
        tables=UNREPORTED_TABLES,
        markdown=[p.replace(".csv", ".md") for p in SUMMARY_TABLES],
        per_tomogram=expand(
            "results/tables/per_tomogram/{method}.csv", method=config["methods"]
        ),
        curves="results/tables/pr_curves.json",
        methods="results/tables/methods.json",
    log:
        "results/logs/summarize/summarize.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        expected=expected_metrics(),
        methods=config["methods"],
        skipped=[
            (t, "no ground truth (truth = none): not scored, overlay only")
            for t in tomos(with_truth=False)
        ],
        thresholds=config["evaluate"]["thresholds"],
        benchmark_rules=benchmark_rules(),
        method_inputs={m: method_files(m) for m in config["methods"]},
        runs=runs.to_dict("records"),
        run_columns=list(runs.columns),
    script:
        "../scripts/summarize.py"
