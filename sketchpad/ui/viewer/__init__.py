"""The large view of one photo (``large_view``), the zoomable photo it draws on
(``photo_view``), and mask correction with review keys (``mask_editor``)."""
