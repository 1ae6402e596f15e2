"""How BPF helpers and kfuncs grew across kernel history.

Count them in source trees (directories, tarballs, Debian's linux-source
packages) or over a kernel git repository, write CSV/JSON, and draw the
cumulative timeline chart::

    from kfunc.survey import survey_git, survey_tree, draw_chart

    survey = survey_git("linux", "v5.10..v6.12")
    draw_chart(survey, "timeline.png")

Submodules: ``sources`` (reading trees), ``helpers`` and ``kfunc_sets`` (what
counts as a helper or a kfunc), ``git`` (history through git plumbing),
``dates`` (release dates), ``debian`` (fetching linux-source packages),
``built`` (counts on a built kernel), ``chart`` and ``report`` (output).
"""

from kfunc.survey.chart import draw_chart
from kfunc.survey.git import survey_git
from kfunc.survey.model import FirstSeen, ReleaseCount, Survey
from kfunc.survey.report import write_csv, write_json
from kfunc.survey.sources import count_tree, read_tree, survey_tree

__all__ = [
    "FirstSeen",
    "ReleaseCount",
    "Survey",
    "count_tree",
    "draw_chart",
    "read_tree",
    "survey_git",
    "survey_tree",
    "write_csv",
    "write_json",
]
