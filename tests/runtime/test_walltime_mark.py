"""Which SIGUSR1 is the walltime warning: with a state directory, only one whose mark exists."""

from hpcdist.paths import warning_file
from hpcdist.runtime.world import is_walltime_warning


def test_without_a_state_directory_every_sigusr1_is_the_warning():
    assert is_walltime_warning({}) is True


def test_with_a_state_directory_only_a_marked_sigusr1_is_the_warning(tmp_path):
    env = {"HPCDIST_STATE_DIR": str(tmp_path)}
    assert is_walltime_warning(env) is False  # e.g. Hydra's notice that a rank died
    warning_file(tmp_path).touch()  # what the job script does before it forwards the warning
    assert is_walltime_warning(env) is True
