from dothis.cli import main

main()
