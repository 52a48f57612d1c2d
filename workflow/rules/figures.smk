# Figures 1a-1d and 4 and the θ-bin figure from the summary tables, per-tomogram slice overlays and Dice along Z (all
# selected tomograms, with or without ground truth), and a report page per tomogram. PNG + PDF; the
# PNGs and the pages go into `snakemake --report`.

FIGURE_TITLES = {
    "figure1a": "1a: Dice and IoU per tomogram",
    "figure1b": "1b: box plots and paired tests",
    "figure1c": "1c: pooled precision-recall",
    "figure1d": "1d: runtime and memory",
    "figure4": "4: before/after post-processing",
    "figure_theta": "recall and precision per θ bin",
}


rule figures:
    input:
        rules.summarize.output,
    output:
        **{
            f"{name}_png": report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
                labels={"figure": FIGURE_TITLES[name]},
            )
            for name in layout.FIGURES
        },
        **{f"{name}_pdf": f"results/figures/{name}.pdf" for name in layout.FIGURES},
        explorer_png=report(
            "results/figures/threshold_explorer.png",
            caption="../report/threshold_explorer.rst",
            category="Figures",
            labels={"figure": "threshold explorer"},
        ),
        explorer_pdf="results/figures/threshold_explorer.pdf",
    log:
        "results/logs/figures/figures.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        methods=config["methods"],
    script:
        "../scripts/figures.py"


rule overlay:
    input:
        unpack(overlay_inputs),
    output:
        png=report(
            "results/figures/overlays/{tomo}.png",
            caption="../report/overlay.rst",
            category="Overlays",
            labels={"tomogram": "{tomo}", "view": "slices through the volume"},
        ),
        pdf="results/figures/overlays/{tomo}.pdf",
        dice_z_png=report(
            "results/figures/dice_z/{tomo}.png",
            caption="../report/dice_z.rst",
            category="Dice along Z",
            labels={"tomogram": "{tomo}"},
        ),
        dice_z_pdf="results/figures/dice_z/{tomo}.pdf",
        stats="results/figures/overlays/{tomo}.json",
    log:
        "results/logs/overlay/{tomo}.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        masks=overlay_masks,
        provenance=lambda wc: {
            m: PROVENANCE[m].format(tomo=wc.tomo) for m in OVERLAY_MASKS
        },
    script:
        "../scripts/overlay.py"


rule tomogram_page:
    input:
        unpack(lambda wc: {"metrics": list(page_metrics(wc).values())}),
        overlay="results/figures/overlays/{tomo}.png",
        dice_z="results/figures/dice_z/{tomo}.png",
        stats="results/figures/overlays/{tomo}.json",
    output:
        html=report(
            "results/report/tomograms/{tomo}.html",
            caption="../report/tomogram.rst",
            category="Tomograms",
            labels={
                "tomogram": "{tomo}",
                "page": "overlays, metrics, runtime, provenance",
            },
        ),
    log:
        "results/logs/tomogram_page/{tomo}.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        methods=config["methods"],
        metrics=page_metrics,
        provenance=lambda wc: {
            m: PROVENANCE[m].format(tomo=wc.tomo) for m in OVERLAY_MASKS
        },
        benchmark_rules=METHOD_BENCHMARK_RULES,
        run=lambda wc: {k: str(v) for k, v in SELECTED[wc.tomo].items() if pd.notna(v)},
    script:
        "../scripts/tomogram_page.py"


rule views_figure:
    input:
        lambda wc: planning.view_figure_files(views_rows(wc)),
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/views.rst",
            category="Figures",
            labels={"figure": "{figure}: 3-D views"},
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "results/logs/figures/{figure}.log",
    wildcard_constraints:
        figure="figure2|figure3|figure5",
    conda:
        "../envs/tomoseg.yaml"
    params:
        rows=views_rows,
        methods=config["methods"],
        # the first tomogram's provenance gives each method's untrained / trained-on mark
        provenance=lambda wc: {
            m: PROVENANCE[m].format(tomo=VIEW_FIGURES[wc.figure][0])
            for m in OVERLAY_MASKS
        },
    script:
        "../scripts/views_figure.py"
