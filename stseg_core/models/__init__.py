"""VOS models behind one interface (`base.VOSModel`) and a name registry (`registry`)."""
