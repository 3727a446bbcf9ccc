"""Corpus readers: one module per corpus, and :data:`READERS`, the registry that
``raw.corpus`` names a reader in.

A reader is a function ``read(raw, signals) -> RawCorpus`` (:class:`~.base.CorpusReader`): it
gets the validated :class:`~boomda.config.RawDataConfig` and the signals in use, and lists the
corpus's utterances (:class:`~.base.RawCorpus`). What the readers share (the utterance list,
skipping and reporting unusable utterances, file search, UTF-8 reading) is in :mod:`.base`.
:func:`boomda.data.raw_pair.read_corpus` and ``RawDataConfig.validate`` look a corpus up here;
adding a corpus is one new module and its line in :data:`READERS` (docs/extending.md).
"""

from boomda.data.readers.base import EMOTIONS, MODALITIES, CorpusReader, RawCorpus, RawItem
from boomda.data.readers.iemocap import IEMOCAP_CODES, iemocap_speaker_half, read_iemocap
from boomda.data.readers.manifest import read_manifest
from boomda.data.readers.msp_improv import MSP_IMPROV_CODES, read_msp_improv
from boomda.registry import READERS as READERS

#: corpus name -> its label codes and the class names (:data:`EMOTIONS`) its reader gives them;
#: IEMOCAP's ``exc`` (excited) is happy only with ``merge_excited``. Two corpora are matched by
#: these names (docs/raw.md, "Two corpora").
CLASS_CODES: dict[str, dict[str, str]] = {
    "iemocap": {**IEMOCAP_CODES, "exc": "happy"},
    "msp-improv": dict(MSP_IMPROV_CODES),
}

__all__ = [
    "CLASS_CODES",
    "EMOTIONS",
    "MODALITIES",
    "READERS",
    "CorpusReader",
    "RawCorpus",
    "RawItem",
    "iemocap_speaker_half",
    "read_iemocap",
    "read_manifest",
    "read_msp_improv",
]
