"""Importers for the VIEW360 family's annotation formats (temporal lines, prompt rows, instance sidecars).

The datasets are not public yet; these readers follow the formats visible in the authors'
annotation tool. Where the real release differs, the importer is where that is fixed: every
other part of vigil360 reads only `vigil360.schema` records.
"""

from vigil360.bench.importers.assemble import assemble_record
from vigil360.bench.importers.instances import InstanceInfo, VideoInstances, read_instances_file
from vigil360.bench.importers.prompts import EntityPrompts, PointPrompt, read_prompt_file
from vigil360.bench.importers.temporal import parse_temporal_line, read_temporal_file

__all__ = [
    "EntityPrompts",
    "InstanceInfo",
    "PointPrompt",
    "VideoInstances",
    "assemble_record",
    "parse_temporal_line",
    "read_instances_file",
    "read_prompt_file",
    "read_temporal_file",
]
