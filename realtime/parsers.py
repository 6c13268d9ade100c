"""DRF's JSON parser, with JSON nested too deep for Python's parser a 400.

DRF lets the parser's RecursionError through, which is a 500; every API endpoint uses
this one instead (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES).
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """JSON nested too deep (`[[[[...]]]]`) is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
