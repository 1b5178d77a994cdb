"""AiiDA's caching for the rung calculations, switched on in a profile's configuration unless the user chose."""

from __future__ import annotations

__all__ = ('CACHED_CALCULATIONS', 'configure_caching')

#: Process types AiiDA may take from its cache: the three calculation jobs of the rungs, where the time goes.  A chain
#: that repeats the DFT and MD inputs of an earlier one (e.g. another anneal temperature) then reruns only the rungs
#: whose inputs changed.  Left out on purpose: the work chains (AiiDA never caches workflows) and the calcfunctions of
#: the rungs and bridges, which take milliseconds; rerunning them costs less than looking them up, and it keeps every
#: handoff a fresh, checked node.
CACHED_CALCULATIONS = (
    'aiida.calculations:quantumespresso.pw',
    'aiida.calculations:lammps.raw',
    'aiida.calculations:multiscale.moose',
)
_CACHING_OPTIONS = ('caching.default_enabled', 'caching.enabled_for', 'caching.disabled_for')


def configure_caching(profile_name: str | None = None, log=print) -> bool:
    """Enable AiiDA's caching for :data:`CACHED_CALCULATIONS` in a profile, unless a caching option is already set.

    The option goes into the profile's section of the AiiDA config (what ``verdi config set caching.enabled_for`` does),
    because that is what daemon workers read; they read it when they start, so a running daemon must be restarted.
    A profile (or the global config) that already sets any ``caching.*`` option is left alone: that is the user's
    choice, including "no caching" (``verdi config set caching.default_enabled false``), which re-running the set-up
    must not undo.

    :param profile_name: the profile (default: the default profile).
    :return: True if the option was written, False if an existing setting was kept.
    """
    from aiida.manage.configuration import get_config

    config = get_config()
    profile = config.get_profile(profile_name)
    existing = [name for name in _CACHING_OPTIONS if name in profile.options or name in config.options]
    if existing:
        log(f'caching: profile {profile.name!r} already sets {", ".join(existing)}; kept as it is')
        return False
    config.set_option('caching.enabled_for', list(CACHED_CALCULATIONS), scope=profile.name)
    config.store()
    log(f'caching: enabled in profile {profile.name!r} for {", ".join(CACHED_CALCULATIONS)}')
    return True
