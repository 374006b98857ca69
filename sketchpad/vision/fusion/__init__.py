"""SketchFusion (seed 003): Stable Diffusion UNet features with CLIP's injected, aggregated
into one dense map. :mod:`.model` the extractor, :mod:`.sd` Stable Diffusion's weights in
diffusers' layout, :mod:`.backbone` the backbone interface the search core uses."""
