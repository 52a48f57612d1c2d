# Figures 1a-1d and 4 from the summary tables, and per-tomogram slice overlays (all selected
# tomograms, with or without ground truth). PNG + PDF; the PNGs go into `snakemake --report`.


rule figures:
    input:
        rules.summarize.output,
    output:
        **{
            f"{name}_png": report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in layout.FIGURES
        },
        **{f"{name}_pdf": f"results/figures/{name}.pdf" for name in layout.FIGURES},
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
            subcategory="{tomo}",
        ),
        pdf="results/figures/overlays/{tomo}.pdf",
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
