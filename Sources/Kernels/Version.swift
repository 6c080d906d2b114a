/// The toolkit's version, shown by every executable's `--version`.
public let jpgenVersion = "0.1.0"
