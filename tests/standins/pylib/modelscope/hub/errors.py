"""modelscope.hub.errors stand-in."""


class NotExistError(Exception):
    pass
