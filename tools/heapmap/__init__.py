"""osmem-heapmap: replay a decision trace (replay), draw the HTML map (page) and the final heap PNG (png)."""
