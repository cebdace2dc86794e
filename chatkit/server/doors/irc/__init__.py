"""The IRC door: IRC clients (weechat, irssi, HexChat, bots) in the same rooms as chatkit's."""
