from trail.cli import main

main()
