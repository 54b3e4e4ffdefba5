"""azureml.data.dataset_type_definitions: the enums v1's dataset factories take."""

from enum import Enum

__all__ = ["PromoteHeadersBehavior", "FileType", "SkipLinesBehavior", "FileEncoding"]


class PromoteHeadersBehavior(Enum):
    """Whether the first line of delimited files is the header (from_delimited_files' header):
    NO_HEADERS reads every line as data; the others take the first line as the column names."""

    NO_HEADERS = 0
    ONLY_FIRST_FILE_HAS_HEADERS = 1
    COMBINE_ALL_FILES_HEADERS = 2
    ALL_FILES_HAVE_SAME_HEADERS = 3


class SkipLinesBehavior(Enum):
    NO_ROWS = 0
    FROM_FIRST_FILE = 1
    FROM_ALL_FILES = 2


class FileType(Enum):
    GENERIC_CSV = 0
    GENERIC_CSV_NO_HEADER = 1
    GENERIC_TSV = 2
    GENERIC_TSV_NO_HEADER = 3
    ZIP = 4
    UNKNOWN = 5


class FileEncoding(Enum):
    UTF8 = 0
    ISO88591 = 1
    LATIN1 = 2
    ASCII = 3
    UTF16 = 4
    UTF32 = 5
    UTF8BOM = 6
    WINDOWS1252 = 7
