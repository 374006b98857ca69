"""Photo search in the window: the search controls, the gallery (model, proxy, view, cells,
thumbnails) and the mask exports."""
