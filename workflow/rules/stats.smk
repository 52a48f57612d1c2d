# Summary tables from the per-tomogram metrics: Table 1, paired tests, Supplementary Tables 1-3,
# thresholds, calibration, AUPRC, single vs two stage, paper comparison, failures and upstream variants.

# What each table is called in the report (its HTML page is the entry; the CSV is named beside it).
TABLE_TITLES = {
    "table1": "Table 1: mean ± sd",
    "ttests": "Paired tests",
    "supp_table1": "Supp. Table 1: per tomogram",
    "supp_table2": "Supp. Table 2: post-processing",
    "supp_table3": "Supp. Table 3: runtime and memory",
    "runtime_per_tomogram": "Runtime per tomogram",
    "thresholds": "Metrics per threshold",
    "calibration": "Best thresholds",
    "auprc": "AUPRC",
    "stages": "Supp. Table 9: one vs two stages",
    "paper_comparison": "Paper vs ours",
    "failures": "Failures",
    "variants": "Upstream ETSAM variants",
    "plane_wise": "Plane-wise metrics (XY, XZ, YZ)",
    "plane_wise_ttests": "Paired tests, plane-wise",
    "theta_wise": "Recall and precision per θ bin",
    "theta_wise_ttests": "Paired tests, per θ bin",
}


rule summarize:
    input:
        metrics=summary_metrics(),
    output:
        **{
            f"{key}_html": report(
                layout.results_path(path).replace(".csv", ".html"),
                caption=f"../report/{key}.rst",
                category="Tables",
                labels={"table": TABLE_TITLES[key], "CSV": layout.results_path(path)},
            )
            for key, path in layout.TABLE_FILES.items()
        },
        tables=SUMMARY_TABLES,
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
        benchmark_rules=BENCHMARK_RULES,
        method_inputs={m: method_files(m) for m in config["methods"]},
        runs=runs.to_dict("records"),
        run_columns=list(runs.columns),
    script:
        "../scripts/summarize.py"
