"""Common Ground: daily debates on individualism and collectivism for Discord communities."""

__version__ = "0.1.0"
