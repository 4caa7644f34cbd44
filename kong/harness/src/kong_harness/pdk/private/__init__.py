"""What ``kong/pdk/private/`` provides the PDK namespaces: phase and argument checks."""
