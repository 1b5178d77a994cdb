"""Parser plugins of aiida-multiscale: ``MooseParser``."""
