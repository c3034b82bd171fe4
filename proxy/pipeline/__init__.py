"""The request pipeline's plug-in stages: their contract, their registry and their runner."""
