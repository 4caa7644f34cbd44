"""The typical kong-pdk plugins ``make bench`` compares the edge plugins with (run as
scripts, one dedicated plugin server each; nothing ships them)."""
