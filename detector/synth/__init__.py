"""synth: see the README's Layout section."""
