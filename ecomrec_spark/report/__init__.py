"""The HTML report: inline SVG charts (svg), page assembly (page), sections read from the lake (build)."""
