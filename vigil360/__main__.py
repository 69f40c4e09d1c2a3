from vigil360.cli import main

main()
