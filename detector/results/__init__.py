"""results: see the README's Layout section."""
